// StreamHash: a fixed, unsalted 64-bit hash of a stream of integers and strings. The
// same input gives the same value in every process, on every machine and byte order.
// Traces fingerprint event streams with it; absl::Hash would not do, because it is
// salted per process.
//
// Each 64-bit word (an integer, or 8 bytes of a string read little-endian) is folded
// in with SplitMix64's finalizer: one multiply-xorshift mix per 8 bytes. It is not
// cryptographic; it only has to make accidental collisions between two runs' event
// streams vanishingly unlikely.
#ifndef DSIM_SIM_INTERNAL_STREAM_HASH_H_
#define DSIM_SIM_INTERNAL_STREAM_HASH_H_

#include <cstdint>
#include <cstring>

#include "absl/strings/string_view.h"
#include "scheduler/random.h"

namespace dsim::internal {

class StreamHash {
 public:
  static constexpr uint64_t kInitialState = 0xcbf29ce484222325ULL;

  explicit StreamHash(uint64_t state = kInitialState) : state_(state) {}

  void AddU64(uint64_t value) { state_ = Mix64(state_ ^ value) + 0x9e3779b97f4a7c15ULL; }
  // Strings are length-prefixed, so ("ab", "c") and ("a", "bc") differ.
  void AddString(absl::string_view text) {
    AddU64(text.size());
    size_t i = 0;
    for (; i + 8 <= text.size(); i += 8) AddU64(LoadLittleEndian(text.data() + i, 8));
    if (i < text.size()) AddU64(LoadLittleEndian(text.data() + i, text.size() - i));
  }
  uint64_t value() const { return state_; }

 private:
  // Up to 8 bytes as a little-endian word, whatever the host's byte order (compilers
  // turn this loop into one load on little-endian machines).
  static uint64_t LoadLittleEndian(const char* bytes, size_t count) {
    uint64_t word = 0;
    for (size_t b = 0; b < count; ++b) {
      word |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[b])) << (8 * b);
    }
    return word;
  }

  uint64_t state_;
};

// WordHash: the trace's per-event hash, a few instructions per pair of words. Each
// step folds two 64-bit words into the state with one 64x64->128-bit multiply whose
// halves are xored (the "mum" mix of wyhash; each operand is xored with a fixed odd
// constant first). Fixed, unsalted and byte-order independent like StreamHash, and
// likewise not cryptographic: it only has to make two different event streams collide
// with negligible probability.
class WordHash {
 public:
  static constexpr uint64_t kInitialState = 0x243f6a8885a308d3ULL;

  explicit WordHash(uint64_t state = kInitialState) : state_(state) {}

  void Add(uint64_t a, uint64_t b) {
    state_ = Mum(state_ ^ a ^ 0xa0761d6478bd642fULL, b ^ 0xe7037ed1a0b428dbULL);
  }
  // Strings are length-prefixed, 16 bytes per step.
  void AddString(absl::string_view text) {
    size_t i = 0;
    uint64_t a = text.size(), b = 0;
    for (; i + 16 <= text.size(); i += 16) {
      Add(a ^ Load(text.data() + i, 8), Load(text.data() + i + 8, 8));
      a = 0;
    }
    const size_t rest = text.size() - i;
    if (rest > 8) {
      a ^= Load(text.data() + i, 8);
      b = Load(text.data() + i + 8, rest - 8);
    } else if (rest > 0) {
      a ^= Load(text.data() + i, rest);
    }
    Add(a, b ^ 0x8ebc6af09c88c6e3ULL);
  }
  uint64_t value() const { return state_; }

 private:
  static uint64_t Mum(uint64_t a, uint64_t b) {
    const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
    return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
  }
  static uint64_t Load(const char* bytes, size_t count) {
    if (count == 8) {
      uint64_t word;
      std::memcpy(&word, bytes, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
      word = __builtin_bswap64(word);
#endif
      return word;
    }
    uint64_t word = 0;
    for (size_t b = 0; b < count; ++b) {
      word |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[b])) << (8 * b);
    }
    return word;
  }

  uint64_t state_;
};

}  // namespace dsim::internal

#endif  // DSIM_SIM_INTERNAL_STREAM_HASH_H_
