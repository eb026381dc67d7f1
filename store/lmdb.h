// Move-only RAII owners of LMDB handles (environment, read and write transactions, cursors).
//
// LMDB's contract, which these types keep: values returned by a read live only until the transaction ends or
// is reset; one write transaction at a time per environment; a read transaction may be reset and renewed
// instead of reopened (the environment is opened with MDB_NOTLS, so a read transaction belongs to its owner
// object, not to the thread that began it). Destructors abort open transactions.
// Thread safety: an Environment may be shared by threads; each transaction and cursor is used by one thread
// at a time.
#pragma once

#include <lmdb.h>

#include <filesystem>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/result.h"

namespace ocsp::store {

Error LmdbError(int rc, std::string_view what);

inline MDB_val ToVal(ByteView bytes) {
  return MDB_val{bytes.size(), const_cast<std::uint8_t*>(bytes.data())};
}
inline ByteView FromVal(const MDB_val& val) {
  return {static_cast<const std::uint8_t*>(val.mv_data), val.mv_size};
}

class Environment {
 public:
  struct Options {
    std::size_t map_size_bytes = std::size_t{1} << 30;
    unsigned max_databases = 16;
    unsigned max_readers = 512;
    bool read_only = false;
  };

  static Result<Environment> Open(const std::filesystem::path& directory, const Options& options);

  Environment(Environment&& other) noexcept : env_(std::exchange(other.env_, nullptr)) {}
  Environment& operator=(Environment&& other) noexcept;
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  ~Environment();

  [[nodiscard]] MDB_env* get() const { return env_; }

 private:
  explicit Environment(MDB_env* env) : env_(env) {}
  MDB_env* env_ = nullptr;
};

class ReadTxn {
 public:
  static Result<ReadTxn> Begin(MDB_env* env);

  ReadTxn(ReadTxn&& other) noexcept : txn_(std::exchange(other.txn_, nullptr)), active_(other.active_) {}
  ReadTxn& operator=(ReadTxn&& other) noexcept;
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;
  ~ReadTxn();

  // Releases the snapshot but keeps the reader slot; Renew() takes a fresh snapshot cheaply.
  void Reset() noexcept;
  [[nodiscard]] Result<void> Renew();
  [[nodiscard]] MDB_txn* get() const { return txn_; }

 private:
  explicit ReadTxn(MDB_txn* txn) : txn_(txn), active_(true) {}
  MDB_txn* txn_ = nullptr;
  bool active_ = false;
};

class WriteTxn {
 public:
  static Result<WriteTxn> Begin(MDB_env* env);

  WriteTxn(WriteTxn&& other) noexcept : txn_(std::exchange(other.txn_, nullptr)) {}
  WriteTxn& operator=(WriteTxn&& other) noexcept;
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;
  ~WriteTxn();  // aborts if not committed

  [[nodiscard]] Result<void> Commit();
  void Abort() noexcept;
  [[nodiscard]] MDB_txn* get() const { return txn_; }

 private:
  explicit WriteTxn(MDB_txn* txn) : txn_(txn) {}
  MDB_txn* txn_ = nullptr;
};

// A cursor must be closed (destroyed or Close()d) before a write transaction it belongs to commits or aborts:
// LMDB frees a write transaction's cursors itself when it ends, and closing one afterwards frees it twice.
class Cursor {
 public:
  static Result<Cursor> Open(MDB_txn* txn, MDB_dbi dbi);
  void Close() noexcept {
    if (cursor_ != nullptr) mdb_cursor_close(std::exchange(cursor_, nullptr));
  }
  Cursor(Cursor&& other) noexcept : cursor_(std::exchange(other.cursor_, nullptr)) {}
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  Cursor& operator=(Cursor&&) = delete;
  ~Cursor();
  [[nodiscard]] MDB_cursor* get() const { return cursor_; }

 private:
  explicit Cursor(MDB_cursor* cursor) : cursor_(cursor) {}
  MDB_cursor* cursor_ = nullptr;
};

// mdb_get: the view is valid until `txn` ends or is reset. nullopt when the key is absent.
Result<std::optional<ByteView>> Get(MDB_txn* txn, MDB_dbi dbi, ByteView key);
Result<void> Put(MDB_txn* txn, MDB_dbi dbi, ByteView key, ByteView value, unsigned flags = 0);

}  // namespace ocsp::store
