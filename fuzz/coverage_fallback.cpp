// No-op coverage callbacks for the standalone fuzzing engine (fuzz/CMakeLists.txt).
//
// With that engine the libraries under test are compiled with GCC's -fsanitize-coverage=trace-pc,trace-cmp, so
// every program linking them needs the callbacks. The fuzz targets get the real ones from standalone_main.cpp
// (linked as an object, so its strong definitions win); everything else in the fuzz build (ocsp-responder, ocspctl,
// fuzz_make_corpus, tests) gets these weak, empty ones from ocsp_common. They must not be instrumented themselves.
#include <cstddef>
#include <cstdint>

#define OCSP_NO_COVERAGE extern "C" __attribute__((weak, no_sanitize_coverage))

OCSP_NO_COVERAGE void __sanitizer_cov_trace_pc() {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_cmp1(std::uint8_t, std::uint8_t) {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_cmp2(std::uint16_t, std::uint16_t) {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_cmp4(std::uint32_t, std::uint32_t) {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_cmp8(std::uint64_t, std::uint64_t) {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_const_cmp1(std::uint8_t, std::uint8_t) {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_const_cmp2(std::uint16_t, std::uint16_t) {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_const_cmp4(std::uint32_t, std::uint32_t) {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_const_cmp8(std::uint64_t, std::uint64_t) {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_cmpf(float, float) {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_cmpd(double, double) {}
OCSP_NO_COVERAGE void __sanitizer_cov_trace_switch(std::uint64_t, std::uint64_t*) {}
