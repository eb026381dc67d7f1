# All dependencies come from Debian 12 packages (scripts/setup.sh installs them).
# LMDB and libevent ship pkg-config files only; the others ship CMake config packages.
find_package(PkgConfig REQUIRED)
find_package(OpenSSL 3.0 REQUIRED)
find_package(Threads REQUIRED)
find_package(CURL REQUIRED)  # ocspctl sync: libcurl4-openssl-dev, so TLS is OpenSSL's like the rest
pkg_check_modules(LMDB REQUIRED IMPORTED_TARGET lmdb)
pkg_check_modules(LIBSYSTEMD REQUIRED IMPORTED_TARGET libsystemd)  # sd_notify, sd_listen_fds: libsystemd-dev
pkg_check_modules(LIBEVENT REQUIRED IMPORTED_TARGET libevent_core>=2.1 libevent_extra>=2.1
                  libevent_pthreads>=2.1)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(tomlplusplus CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
if(OCSP_BUILD_TESTS)
  find_package(doctest CONFIG REQUIRED)
endif()
