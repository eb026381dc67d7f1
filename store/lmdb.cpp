#include "store/lmdb.h"

#include <system_error>

namespace ocsp::store {

Error LmdbError(int rc, std::string_view what) {
  const ErrorCode code = rc == MDB_MAP_FULL ? ErrorCode::kUnavailable : ErrorCode::kStore;
  std::string message(what);
  message += ": ";
  message += mdb_strerror(rc);
  if (rc == MDB_MAP_FULL) message += " (raise store.map_size_mib)";
  return Error{code, std::move(message)};
}

Result<Environment> Environment::Open(const std::filesystem::path& directory, const Options& options) {
  std::error_code ec;
  if (!options.read_only) std::filesystem::create_directories(directory, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot create " + directory.string() + ": " + ec.message());

  MDB_env* raw = nullptr;
  if (int rc = mdb_env_create(&raw); rc != 0) return std::unexpected(LmdbError(rc, "mdb_env_create"));
  Environment env(raw);
  if (int rc = mdb_env_set_maxdbs(raw, options.max_databases); rc != 0) {
    return std::unexpected(LmdbError(rc, "mdb_env_set_maxdbs"));
  }
  if (int rc = mdb_env_set_maxreaders(raw, options.max_readers); rc != 0) {
    return std::unexpected(LmdbError(rc, "mdb_env_set_maxreaders"));
  }
  if (int rc = mdb_env_set_mapsize(raw, options.map_size_bytes); rc != 0) {
    return std::unexpected(LmdbError(rc, "mdb_env_set_mapsize"));
  }
  // MDB_NOTLS: read transactions are owned by objects (one per worker), not by threads.
  unsigned flags = MDB_NOTLS;
  if (options.read_only) flags |= MDB_RDONLY;
  if (int rc = mdb_env_open(raw, directory.c_str(), flags, 0600); rc != 0) {
    return std::unexpected(LmdbError(rc, "opening the store at " + directory.string()));
  }
  // Readers left behind by a killed process would pin old pages forever.
  int dead = 0;
  mdb_reader_check(raw, &dead);
  return env;
}

Environment& Environment::operator=(Environment&& other) noexcept {
  if (this != &other) {
    if (env_ != nullptr) mdb_env_close(env_);
    env_ = std::exchange(other.env_, nullptr);
  }
  return *this;
}

Environment::~Environment() {
  if (env_ != nullptr) mdb_env_close(env_);
}

Result<ReadTxn> ReadTxn::Begin(MDB_env* env) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
  if (rc == MDB_MAP_RESIZED) {
    // Another process grew the map; adopt its size and try once more.
    mdb_env_set_mapsize(env, 0);
    rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
  }
  if (rc != 0) return std::unexpected(LmdbError(rc, "beginning a read transaction"));
  return ReadTxn(txn);
}

ReadTxn& ReadTxn::operator=(ReadTxn&& other) noexcept {
  if (this != &other) {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
    txn_ = std::exchange(other.txn_, nullptr);
    active_ = other.active_;
  }
  return *this;
}

ReadTxn::~ReadTxn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}

void ReadTxn::Reset() noexcept {
  if (txn_ != nullptr && active_) {
    mdb_txn_reset(txn_);
    active_ = false;
  }
}

Result<void> ReadTxn::Renew() {
  if (active_) return {};
  int rc = mdb_txn_renew(txn_);
  if (rc == MDB_MAP_RESIZED) {
    mdb_env_set_mapsize(mdb_txn_env(txn_), 0);
    rc = mdb_txn_renew(txn_);
  }
  if (rc != 0) return std::unexpected(LmdbError(rc, "renewing a read transaction"));
  active_ = true;
  return {};
}

Result<WriteTxn> WriteTxn::Begin(MDB_env* env) {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != 0) {
    return std::unexpected(LmdbError(rc, "beginning a write transaction"));
  }
  return WriteTxn(txn);
}

WriteTxn& WriteTxn::operator=(WriteTxn&& other) noexcept {
  if (this != &other) {
    Abort();
    txn_ = std::exchange(other.txn_, nullptr);
  }
  return *this;
}

WriteTxn::~WriteTxn() { Abort(); }

Result<void> WriteTxn::Commit() {
  MDB_txn* txn = std::exchange(txn_, nullptr);
  if (txn == nullptr) return Fail(ErrorCode::kInternal, "commit of a finished transaction");
  if (int rc = mdb_txn_commit(txn); rc != 0) return std::unexpected(LmdbError(rc, "committing"));
  return {};
}

void WriteTxn::Abort() noexcept {
  if (txn_ != nullptr) mdb_txn_abort(std::exchange(txn_, nullptr));
}

Result<Cursor> Cursor::Open(MDB_txn* txn, MDB_dbi dbi) {
  MDB_cursor* cursor = nullptr;
  if (int rc = mdb_cursor_open(txn, dbi, &cursor); rc != 0) {
    return std::unexpected(LmdbError(rc, "opening a cursor"));
  }
  return Cursor(cursor);
}

Cursor::~Cursor() {
  if (cursor_ != nullptr) mdb_cursor_close(cursor_);
}

Result<std::optional<ByteView>> Get(MDB_txn* txn, MDB_dbi dbi, ByteView key) {
  MDB_val k = ToVal(key);
  MDB_val v{};
  const int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<ByteView>();
  if (rc != 0) return std::unexpected(LmdbError(rc, "mdb_get"));
  return std::optional<ByteView>(FromVal(v));
}

Result<void> Put(MDB_txn* txn, MDB_dbi dbi, ByteView key, ByteView value, unsigned flags) {
  MDB_val k = ToVal(key);
  MDB_val v = ToVal(value);
  if (int rc = mdb_put(txn, dbi, &k, &v, flags); rc != 0) return std::unexpected(LmdbError(rc, "mdb_put"));
  return {};
}

}  // namespace ocsp::store
