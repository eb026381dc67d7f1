// A structure-aware mutator for DER inputs, used by the DER fuzz targets' LLVMFuzzerCustomMutator.
//
// Byte-level mutations of a CRL almost always break an outer length, so the parser stops at offset 0 and
// nothing deeper is exercised. This mutator reads the input as a tree of TLVs (looking inside OCTET STRINGs
// that hold DER, as extnValue does), changes the tree (drops, duplicates, moves, wraps or retags an element,
// rewrites a primitive's contents with libFuzzer's own mutator or with values chosen for X.509: edge-case
// INTEGERs, times, BOOLEANs, OIDs), and writes it back with correct lengths. Occasionally it writes one
// length in a non-DER form (long form for a short length, leading zeros, indefinite) on purpose.
// Thread safety: pure function of its arguments.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ocsp::fuzz {

// Mutates data[0, size) in place (data has room for max_size bytes); returns the new size. Falls back on
// LLVMFuzzerMutate for inputs that are not DER and for a third of the calls.
std::size_t MutateDer(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned int seed);

}  // namespace ocsp::fuzz

// libFuzzer's default mutator (libFuzzer provides it; so does fuzz/standalone_main.cpp).
extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);
