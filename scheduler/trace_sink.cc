#include "scheduler/trace_sink.h"

namespace dsim {

void TraceSink::DecideSlow(DecisionKind kind, TaskId current, int64_t now_ns,
                           uint64_t num_options, absl::Span<const uint64_t> candidates,
                           const char* label, bool from_yield, uint64_t chosen) {
  const size_t n = candidates.size();
  // The candidates (of a wake-one pick) are not event content, but hashing them
  // catches runs whose wait queues differ before any choice does.
  uint64_t candidates_hash = 0x452821e638d01377ULL ^ n;
  for (size_t i = 0; i < n; i += 2) {
    candidates_hash = internal::TraceMum(candidates_hash ^ candidates[i] ^ internal::kTextHashK1,
                                         (i + 1 < n ? candidates[i + 1] : 0) ^
                                             internal::kTextHashK2);
  }
  if (label == nullptr) label = "";
  CheckNow(now_ns);
  uint64_t* p = Begin(6);
  p[0] = Header(TraceRecord::kDecision,
                static_cast<uint8_t>(static_cast<int>(kind) | int{from_yield} << 4), kNoGroup);
  p[1] = current;
  p[2] = n == 0 ? chosen : candidates[chosen];
  p[3] = num_options;
  p[4] = StaticHash(label);
  p[5] = candidates_hash;
}

// kMaxContinues steps without an event: a header-only record that is no event.
void TraceSink::FlushContinues() {
  if (cursor_ + 1 > limit_) NextBlock();
  *cursor_++ = Header(TraceRecord::kContinues, 0, kNoGroup);
}

}  // namespace dsim
