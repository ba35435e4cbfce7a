#include "sim/internal/stream_hash.h"

#include <array>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DSIM_HAVE_AESNI_PATH 1
#else
#define DSIM_HAVE_AESNI_PATH 0
#endif

namespace dsim::internal {

namespace {

// The key of each pair's second round, and of the finishing rounds (digits of pi).
constexpr Block128 kRoundKey{0x452821e638d01377ULL, 0xbe5466cf34e90c6cULL};
constexpr Block128 kFinishKey{0xc0ac29b7c97c50ddULL, 0x3f84d5b5b5470917ULL};

// ---- The portable round ------------------------------------------------------------

constexpr uint8_t RotateLeft8(uint8_t x, int n) {
  return static_cast<uint8_t>(x << n | x >> (8 - n));
}

// The AES S-box, computed: p runs over the nonzero elements of GF(2^8) as powers of 3,
// q over their inverses (powers of 3's inverse); then the affine map.
constexpr std::array<uint8_t, 256> MakeSbox() {
  std::array<uint8_t, 256> box{};
  uint8_t p = 1, q = 1;
  do {
    p = static_cast<uint8_t>(p ^ (p << 1) ^ ((p & 0x80) != 0 ? 0x1b : 0));  // p * 3
    q = static_cast<uint8_t>(q ^ (q << 1));                                // q / 3
    q = static_cast<uint8_t>(q ^ (q << 2));
    q = static_cast<uint8_t>(q ^ (q << 4));
    if ((q & 0x80) != 0) q ^= 0x09;
    box[p] = static_cast<uint8_t>(q ^ RotateLeft8(q, 1) ^ RotateLeft8(q, 2) ^ RotateLeft8(q, 3) ^
                                  RotateLeft8(q, 4) ^ 0x63);
  } while (p != 1);
  box[0] = 0x63;  // 0 has no inverse.
  return box;
}

constexpr std::array<uint8_t, 256> kSbox = MakeSbox();
static_assert(kSbox[0x00] == 0x63 && kSbox[0x01] == 0x7c && kSbox[0x53] == 0xed &&
              kSbox[0xff] == 0x16);

inline uint8_t XTime(uint8_t x) { return static_cast<uint8_t>(x << 1 ^ ((x >> 7) * 0x1b)); }

inline uint8_t ByteOf(Block128 s, int i) {
  return static_cast<uint8_t>((i < 8 ? s.lo : s.hi) >> (8 * (i & 7)));
}

inline void PairMixPortable(Block128* lane, const uint64_t* pair) {
  *lane = AesRoundPortable(AesRoundPortable(*lane, Block128{pair[0], pair[1]}), kRoundKey);
}

#if DSIM_HAVE_AESNI_PATH

bool DetectAes() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse2");
}

__attribute__((target("aes,sse2"))) inline __m128i Load(Block128 b) {
  return _mm_set_epi64x(static_cast<int64_t>(b.hi), static_cast<int64_t>(b.lo));
}
__attribute__((target("aes,sse2"))) inline Block128 Store(__m128i v) {
  alignas(16) uint64_t out[2];
  _mm_store_si128(reinterpret_cast<__m128i*>(out), v);
  return Block128{out[0], out[1]};
}

__attribute__((target("aes,sse2"))) Block128 AesRoundAesni(Block128 state, Block128 key) {
  return Store(_mm_aesenc_si128(Load(state), Load(key)));
}

// One pair into a lane: its first round takes the pair from (aligned) memory.
#define DSIM_ABSORB(lane, p)                                                          \
  lane = _mm_aesenc_si128(                                                            \
      _mm_aesenc_si128(lane, _mm_load_si128(reinterpret_cast<const __m128i*>(p))), key)

// Pairs [begin, end) of `words`, then (if `odd`) words[2 * end] as pair `end`.
__attribute__((target("aes,sse2"))) void AbsorbPairsAesni(HashLanes* lanes,
                                                          const uint64_t* words,
                                                          size_t begin, size_t end,
                                                          bool odd = false) {
  __m128i a = Load(lanes->a);
  __m128i b = Load(lanes->b);
  const __m128i key = Load(kRoundKey);
  size_t j = begin;
  if (j < end && (j & 1) != 0) {
    DSIM_ABSORB(b, words + 2 * j);
    ++j;
  }
  for (; j + 8 <= end; j += 8) {  // A whole block is 128 pairs.
    const uint64_t* p = words + 2 * j;
    DSIM_ABSORB(a, p);
    DSIM_ABSORB(b, p + 2);
    DSIM_ABSORB(a, p + 4);
    DSIM_ABSORB(b, p + 6);
    DSIM_ABSORB(a, p + 8);
    DSIM_ABSORB(b, p + 10);
    DSIM_ABSORB(a, p + 12);
    DSIM_ABSORB(b, p + 14);
  }
  for (; j < end; ++j) {
    if ((j & 1) == 0) {
      DSIM_ABSORB(a, words + 2 * j);
    } else {
      DSIM_ABSORB(b, words + 2 * j);
    }
  }
  if (odd) {
    const __m128i pair = _mm_set_epi64x(static_cast<int64_t>(kOddWordPad),
                                        static_cast<int64_t>(words[2 * end]));
    if ((end & 1) == 0) {
      a = _mm_aesenc_si128(_mm_aesenc_si128(a, pair), key);
    } else {
      b = _mm_aesenc_si128(_mm_aesenc_si128(b, pair), key);
    }
  }
  lanes->a = Store(a);
  lanes->b = Store(b);
}

#undef DSIM_ABSORB

#else

bool DetectAes() { return false; }

#endif  // DSIM_HAVE_AESNI_PATH

}  // namespace

bool HardwareAes() {
  static const bool hardware = DetectAes();
  return hardware;
}

Block128 AesRoundPortable(Block128 state, Block128 key) {
  // ShiftRows then SubBytes: row r of column c comes from row r of column (c + r) % 4.
  uint8_t t[16];
  for (int c = 0; c < 4; ++c) {
    for (int r = 0; r < 4; ++r) t[4 * c + r] = kSbox[ByteOf(state, 4 * ((c + r) & 3) + r)];
  }
  uint8_t out[16];
  for (int c = 0; c < 4; ++c) {
    const uint8_t a0 = t[4 * c], a1 = t[4 * c + 1], a2 = t[4 * c + 2], a3 = t[4 * c + 3];
    out[4 * c] = static_cast<uint8_t>(XTime(a0) ^ XTime(a1) ^ a1 ^ a2 ^ a3);
    out[4 * c + 1] = static_cast<uint8_t>(a0 ^ XTime(a1) ^ XTime(a2) ^ a2 ^ a3);
    out[4 * c + 2] = static_cast<uint8_t>(a0 ^ a1 ^ XTime(a2) ^ XTime(a3) ^ a3);
    out[4 * c + 3] = static_cast<uint8_t>(XTime(a0) ^ a0 ^ a1 ^ a2 ^ XTime(a3));
  }
  Block128 result;
  for (int i = 0; i < 8; ++i) {
    result.lo |= uint64_t{out[i]} << (8 * i);
    result.hi |= uint64_t{out[8 + i]} << (8 * i);
  }
  result.lo ^= key.lo;
  result.hi ^= key.hi;
  return result;
}

Block128 AesRound(Block128 state, Block128 key) {
#if DSIM_HAVE_AESNI_PATH
  if (HardwareAes()) return AesRoundAesni(state, key);
#endif
  return AesRoundPortable(state, key);
}

void AbsorbPairs(HashLanes* lanes, const uint64_t* words, size_t pair_begin, size_t pair_end) {
#if DSIM_HAVE_AESNI_PATH
  if (HardwareAes()) return AbsorbPairsAesni(lanes, words, pair_begin, pair_end);
#endif
  AbsorbPairsPortable(lanes, words, pair_begin, pair_end);
}

void AbsorbPairsPortable(HashLanes* lanes, const uint64_t* words, size_t pair_begin,
                         size_t pair_end) {
  for (size_t j = pair_begin; j < pair_end; ++j) {
    PairMixPortable((j & 1) == 0 ? &lanes->a : &lanes->b, words + 2 * j);
  }
}

void AbsorbOddWord(HashLanes* lanes, uint64_t word, size_t pair_index) {
  Block128& lane = (pair_index & 1) == 0 ? lanes->a : lanes->b;
  lane = AesRound(AesRound(lane, Block128{word, kOddWordPad}), kRoundKey);
}

void AbsorbBlock(HashLanes* lanes, const uint64_t* words, size_t n) {
#if DSIM_HAVE_AESNI_PATH
  if (HardwareAes()) return AbsorbPairsAesni(lanes, words, 0, n / 2, (n & 1) != 0);
#endif
  AbsorbPairsPortable(lanes, words, 0, n / 2);
  if ((n & 1) != 0) AbsorbOddWord(lanes, words[n - 1], n / 2);
}

uint64_t FinishHash(const HashLanes& lanes, uint64_t x, uint64_t y) {
  Block128 a = AesRound(AesRound(lanes.a, Block128{x, y}), kRoundKey);
  // Lane B enters A as a round key: the result is a bijection of either lane.
  Block128 s = AesRound(AesRound(a, lanes.b), kRoundKey);
  s = AesRound(s, kFinishKey);
  s = AesRound(s, kRoundKey);
  return s.lo ^ s.hi;
}

}  // namespace dsim::internal
