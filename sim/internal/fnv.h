// Fnv64: FNV-1a, 64-bit. A fixed, unsalted hash: the same bytes give the same value in
// every process, on every machine. Traces fingerprint event streams with it; absl::Hash
// would not do, because it is salted per process.
#ifndef DSIM_SIM_INTERNAL_FNV_H_
#define DSIM_SIM_INTERNAL_FNV_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace dsim::internal {

class Fnv64 {
 public:
  static constexpr uint64_t kOffsetBasis = 0xcbf29ce484222325ULL;
  static constexpr uint64_t kPrime = 0x100000001b3ULL;

  explicit Fnv64(uint64_t state = kOffsetBasis) : state_(state) {}

  // Integers are fed as 8 little-endian bytes, whatever the host's byte order.
  void AddU64(uint64_t value) {
    for (int i = 0; i < 8; ++i) AddByte(static_cast<uint8_t>(value >> (8 * i)));
  }
  // Strings are length-prefixed, so ("ab", "c") and ("a", "bc") differ.
  void AddString(absl::string_view text) {
    AddU64(text.size());
    for (char c : text) AddByte(static_cast<uint8_t>(c));
  }
  uint64_t value() const { return state_; }

 private:
  void AddByte(uint8_t byte) {
    state_ ^= byte;
    state_ *= kPrime;
  }

  uint64_t state_;
};

}  // namespace dsim::internal

#endif  // DSIM_SIM_INTERNAL_FNV_H_
