// BlockHash: the trace's fixed, unsalted hash of a stream of 64-bit words. The same
// input gives the same value in every process, on every machine and byte order, with
// or without AES instructions. Traces fingerprint their record stream with it; absl::Hash
// would not do, because it is salted per process.
//
// Two lanes of 128 bits. The words go in as pairs (16 bytes), alternately into lane A
// and lane B; each pair is absorbed by two AES rounds:
//
//   lane = AesRound(AesRound(lane, pair), kRoundKey)     (AesRound(s, k): x86's AESENC)
//
// so a pair enters as a round key (xored into the state after one round) and two full
// rounds pass before the lane's next pair: every byte of the lane then depends on every
// byte of the pair. Each step is a bijection of the lane for fixed input, so two streams
// that differ in exactly one word always end in different lanes; any other difference
// survives with all but negligible probability (this is not a cryptographic MAC: it only
// has to tell accidentally different runs apart). The final value folds the lanes
// through more rounds to 64 bits.
//
// Cost: with AES-NI (x86-64, detected at run time) about 1.3 instructions per word (one
// AESENC per word, each pair's first round reading it from aligned memory, 8 pairs per
// loop), and the two lanes keep the two chains of dependent rounds overlapped. Without
// AES-NI a portable round computes the same values, many times slower.
#ifndef DSIM_SIM_INTERNAL_STREAM_HASH_H_
#define DSIM_SIM_INTERNAL_STREAM_HASH_H_

#include <cstddef>
#include <cstdint>

namespace dsim::internal {

// 16 bytes as two little-endian words: bytes 0-7 are `lo`, 8-15 `hi` (an AES state's
// bytes in FIPS-197 order, column by column).
struct Block128 {
  uint64_t lo = 0;
  uint64_t hi = 0;
};
inline bool operator==(Block128 a, Block128 b) { return a.lo == b.lo && a.hi == b.hi; }

// One AES encryption round: ShiftRows, SubBytes, MixColumns, then xor `key` (what
// x86's AESENC computes). AesRound uses the instruction when the CPU has it, else
// AesRoundPortable; both give the same value.
Block128 AesRound(Block128 state, Block128 key);
Block128 AesRoundPortable(Block128 state, Block128 key);
// True when AesRound and AbsorbPairs use AES-NI.
bool HardwareAes();

struct HashLanes {
  Block128 a{0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL};
  Block128 b{0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL};
};

// Absorbs the word pairs [pair_begin, pair_end) of `words` (pair j is words[2j] and
// words[2j + 1]; it goes into lane A if j is even, B if odd). `words` is 16-byte aligned.
void AbsorbPairs(HashLanes* lanes, const uint64_t* words, size_t pair_begin, size_t pair_end);
// AbsorbPairs without AES instructions (what it does on CPUs without them).
void AbsorbPairsPortable(HashLanes* lanes, const uint64_t* words, size_t pair_begin,
                         size_t pair_end);
// Absorbs a last, unpaired word as pair `pair_index` (word, kOddWordPad).
void AbsorbOddWord(HashLanes* lanes, uint64_t word, size_t pair_index);
// Absorbs words[0, n): its pairs, then an odd last word (AbsorbOddWord).
void AbsorbBlock(HashLanes* lanes, const uint64_t* words, size_t n);
// The 64-bit value of `lanes` after absorbing one more pair (x, y).
uint64_t FinishHash(const HashLanes& lanes, uint64_t x, uint64_t y);

// What an odd last word is paired with.
inline constexpr uint64_t kOddWordPad = 0x8ebc6af09c88c6e3ULL;

}  // namespace dsim::internal

#endif  // DSIM_SIM_INTERNAL_STREAM_HASH_H_
