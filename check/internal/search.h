// The search for a linearization of one partition: Wing & Gong's algorithm with
// Lowe's memoization, in the iterative form Porcupine uses.
//
// Every operation becomes two entries, its call and its return, in one doubly linked
// list in history order (returns of unknown-outcome operations last, at +infinity).
// The search walks the list from the front. At a call entry it tries to linearize
// that operation now: if the model accepts it in the current state and the pair
// (linearized set, new state) was never reached before, the operation's two entries
// are unlinked ("lifted") and the walk restarts from the front. Reaching a return
// entry means that operation should have been linearized already: the search undoes
// the last linearization and tries the next candidate after it. The history is
// linearizable when every operation that completed ok is linearized; unknown-outcome
// operations may be linearized (took effect) or left out (did not), at any point after
// their call. It is not linearizable when a return entry is reached with nothing to
// undo.
//
// The memo holds (linearized set, state). The set is identified by a 128-bit Zobrist
// fingerprint (two random 64-bit words per operation, XORed), and for partitions of at
// most kExactSetOperations operations also by the exact bitset. Above that, two
// different sets are confused only if their 128-bit fingerprints collide (probability
// about n^2 / 2^129 for n memo entries: below 1e-20 for a billion entries), which could
// prune a branch, never accept a wrong linearization.
//
// The search is resumable: Run(max_steps) continues where it stopped, so a caller can
// interleave many partitions (one expensive key does not starve the others).
#ifndef DSIM_CHECK_INTERNAL_SEARCH_H_
#define DSIM_CHECK_INTERNAL_SEARCH_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "check/history.h"
#include "scheduler/internal/check.h"

namespace dsim::check::internal {

inline constexpr size_t kExactSetOperations = 4096;

enum class SearchStatus {
  kRunning,           // Out of steps for this call; Run again to continue.
  kLinearizable,
  kNotLinearizable,
  kReachedDepth,      // SearchConfig::stop_at_depth operations are linearized.
};

// What the search needs about each operation, beside the model's compiled form.
struct SearchOp {
  int64_t call_position = 0;
  int64_t return_position = Operation::kNever;  // kNever: unknown outcome.
  bool required = true;  // Completed ok: must be linearized.
  size_t id = 0;         // Operation::id, for results.
};

struct SearchConfig {
  // Stop (kReachedDepth) as soon as this many operations are linearized; 0: never.
  // Used to recover the longest partial linearization, once its length is known.
  size_t stop_at_depth = 0;
  // Force fingerprint-only memo entries (tests exercise both kinds this way).
  bool force_fingerprints = false;
};

// The type-erased face of a search, one per partition.
class PartitionSearch {
 public:
  virtual ~PartitionSearch() = default;
  // Continues the search for at most `max_steps` steps.
  virtual SearchStatus Run(uint64_t max_steps) = 0;
  virtual uint64_t steps() const = 0;
  // The most operations ever linearized at once.
  virtual size_t max_depth() const = 0;
  // The operations linearized now, in linearization order (Operation ids), and the
  // model's state after each.
  virtual std::vector<size_t> Linearization() const = 0;
  virtual std::vector<std::string> StatesAlong() const = 0;
  virtual size_t memo_entries() const = 0;
};

// SplitMix64: deterministic Zobrist words, no global state.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// M (a model) provides:
//   using State = ...; using Op = ...;
//   State Init() const;
//   bool Step(const State& state, const Op& op, State* next) const;
//   uint64_t Hash(const State& state) const;
//   bool ReadOnly(const Op& op) const;   // Never changes any state (a read).
//   // Optional reductions (return false / do nothing when unsure):
//   bool Overwrites(const State& state, const Op& op) const;  // see PreferForced
//   void Linearized(const Op& op, int delta) const;  // +1 linearized, -1 undone
//   bool Equal(const State& a, const State& b) const;
//   std::string Describe(const State& state) const;
template <typename M>
class Search final : public PartitionSearch {
 public:
  using State = typename M::State;
  using Op = typename M::Op;

  Search(const M* model, std::vector<Op> ops, std::vector<SearchOp> meta, SearchConfig config)
      : model_(model),
        ops_(std::move(ops)),
        meta_(std::move(meta)),
        config_(config),
        exact_(!config.force_fingerprints && meta_.size() <= kExactSetOperations),
        words_((meta_.size() + 63) / 64),
        bits_(words_, 0),
        memo_(16, MemoHash{}, MemoEq{this}),
        state_(model->Init()) {
    DSIM_CHECK(ops_.size() == meta_.size());
    BuildEntries();
    for (size_t i = 0; i < meta_.size(); ++i) {
      zobrist_.push_back({Mix64(2 * i + 1), Mix64(2 * i + 2)});
      if (meta_[i].required) ++required_total_;
    }
    entry_ = entries_[head_].next;
  }

  SearchStatus Run(uint64_t max_steps) override {
    if (status_ != SearchStatus::kRunning && status_ != SearchStatus::kReachedDepth) {
      return status_;
    }
    for (uint64_t i = 0; i < max_steps; ++i) {
      if (required_done_ == required_total_) return status_ = SearchStatus::kLinearizable;
      if (config_.stop_at_depth != 0 && calls_.size() >= config_.stop_at_depth) {
        return status_ = SearchStatus::kReachedDepth;
      }
      ++steps_;
      if (fresh_node_) {
        fresh_node_ = false;
        const ReadChoice read = PreferRead();
        if (read == ReadChoice::kTook) continue;
        if (read == ReadChoice::kNodeFails) {
          if (calls_.empty() || !Backtrack()) return status_ = SearchStatus::kNotLinearizable;
          continue;
        }
      }
      DSIM_CHECK(entry_ != kNone, "the walk ran off the list with required operations left");
      const Entry& entry = entries_[entry_];
      if (!entry.is_return) {
        TryLinearize(entry);
        continue;
      }
      if (calls_.empty() || !Backtrack()) return status_ = SearchStatus::kNotLinearizable;
    }
    return status_ = SearchStatus::kRunning;
  }

  uint64_t steps() const override { return steps_; }
  size_t max_depth() const override { return max_depth_; }
  size_t memo_entries() const override { return memo_.size(); }

  std::vector<size_t> Linearization() const override {
    std::vector<size_t> ids;
    for (const Call& call : calls_) ids.push_back(meta_[entries_[call.entry].op].id);
    return ids;
  }

  std::vector<std::string> StatesAlong() const override {
    std::vector<std::string> states;
    for (size_t i = 1; i < calls_.size(); ++i) states.push_back(model_->Describe(calls_[i].before));
    if (!calls_.empty()) states.push_back(model_->Describe(state_));
    return states;
  }

 private:
  static constexpr int32_t kNone = -1;

  struct Entry {
    int32_t op = 0;
    bool is_return = false;
    int32_t match = kNone;  // The other entry of the same operation.
    int32_t prev = kNone;
    int32_t next = kNone;
  };

  struct Call {
    int32_t entry;  // The call entry of the linearized operation.
    State before;   // The state before it.
    bool forced;    // The node's only branch: when it fails, the node fails.
  };

  struct MemoKey {
    uint64_t lo;
    uint64_t hi;
    uint64_t state_hash;
    uint32_t bits_offset;  // Into bit_arena_ (exact mode).
    State state;
  };

  struct MemoHash {
    size_t operator()(const MemoKey& key) const {
      return static_cast<size_t>(key.lo ^ Mix64(key.state_hash));
    }
  };

  struct MemoEq {
    const Search* search;
    bool operator()(const MemoKey& a, const MemoKey& b) const {
      if (a.lo != b.lo || a.hi != b.hi || a.state_hash != b.state_hash) return false;
      if (!search->model_->Equal(a.state, b.state)) return false;
      if (!search->exact_) return true;
      const uint64_t* arena = search->bit_arena_.data();
      return std::memcmp(arena + a.bits_offset, arena + b.bits_offset,
                         search->words_ * sizeof(uint64_t)) == 0;
    }
  };

  void BuildEntries() {
    const size_t n = meta_.size();
    struct Stamp {
      int64_t position;
      int32_t op;
      bool is_return;
    };
    std::vector<Stamp> stamps;
    stamps.reserve(2 * n);
    for (size_t i = 0; i < n; ++i) {
      DSIM_CHECK(meta_[i].return_position > meta_[i].call_position,
                 "an operation returns before its call");
      stamps.push_back({meta_[i].call_position, static_cast<int32_t>(i), false});
      stamps.push_back({meta_[i].return_position, static_cast<int32_t>(i), true});
    }
    // Positions are distinct event positions, except the shared +infinity of
    // unknown-outcome returns, ordered by operation among themselves.
    std::sort(stamps.begin(), stamps.end(), [](const Stamp& a, const Stamp& b) {
      if (a.position != b.position) return a.position < b.position;
      return a.op < b.op;
    });
    entries_.resize(2 * n + 1);
    head_ = static_cast<int32_t>(2 * n);
    std::vector<int32_t> call_entry(n, kNone);
    int32_t prev = head_;
    for (size_t i = 0; i < stamps.size(); ++i) {
      const int32_t index = static_cast<int32_t>(i);
      Entry& entry = entries_[i];
      entry.op = stamps[i].op;
      entry.is_return = stamps[i].is_return;
      entry.prev = prev;
      entries_[prev].next = index;
      prev = index;
      if (!entry.is_return) {
        call_entry[entry.op] = index;
      } else {
        entry.match = call_entry[entry.op];
        entries_[entry.match].match = index;
      }
    }
    entries_[prev].next = kNone;
  }

  void Toggle(int32_t op) {
    bits_[op / 64] ^= uint64_t{1} << (op % 64);
    lo_ ^= zobrist_[op].first;
    hi_ ^= zobrist_[op].second;
  }

  // Adds (current set, state) to the memo; false if it was there.
  bool Remember(const State& state) {
    MemoKey key{lo_, hi_, model_->Hash(state), 0, state};
    if (exact_) {
      key.bits_offset = static_cast<uint32_t>(bit_arena_.size());
      bit_arena_.insert(bit_arena_.end(), bits_.begin(), bits_.end());
    }
    const bool inserted = memo_.insert(std::move(key)).second;
    if (!inserted && exact_) bit_arena_.resize(bit_arena_.size() - words_);
    return inserted;
  }

  // Linearizes the operation of call entry `index` (already toggled into the set),
  // entering a new node: the walk restarts from the front.
  void Push(int32_t index, State next, bool forced) {
    const int32_t op = entries_[index].op;
    model_->Linearized(ops_[op], +1);
    calls_.push_back(Call{index, std::move(state_), forced});
    state_ = std::move(next);
    Lift(index);
    if (meta_[op].required) ++required_done_;
    max_depth_ = std::max(max_depth_, calls_.size());
    entry_ = entries_[head_].next;
    fresh_node_ = true;
  }

  void TryLinearize(const Entry& entry) {
    const int32_t here = entry_;
    State next;
    if (model_->Step(state_, ops_[entry.op], &next)) {
      Toggle(entry.op);
      if (Remember(next)) {
        Push(here, std::move(next), model_->ReadOnly(ops_[entry.op]));
        return;
      }
      Toggle(entry.op);
    }
    entry_ = entry.next;
  }

  enum class ReadChoice { kNone, kTook, kNodeFails };

  // At a new node, some operations may be taken first, as the node's only branch,
  // because if the node has a completion at all, it has one that starts with them:
  //   - a read-only operation that may be linearized now (see Backtrack);
  //   - a write whose value nobody left will observe, when nobody left will observe
  //     the current state either (M::Overwrites decides). Nothing can tell whether it
  //     happens now or where it would have happened later: its value is overwritten
  //     before anything looks, and so is the current one.
  // This keeps reads, and writes nobody read, from multiplying the orders of
  // concurrent writes the search tries. If the node with the forced operation was
  // seen before (and so failed), this node fails too.
  ReadChoice PreferRead() {
    for (int pass = 0; pass < 2; ++pass) {
      for (int32_t index = entries_[head_].next; index != kNone && !entries_[index].is_return;
           index = entries_[index].next) {
        const int32_t op = entries_[index].op;
        const bool candidate = pass == 0 ? model_->ReadOnly(ops_[op])
                                         : model_->Overwrites(state_, ops_[op]);
        if (!candidate) continue;
        State next;
        if (!model_->Step(state_, ops_[op], &next)) continue;
        Toggle(op);
        if (Remember(next)) {
          Push(index, std::move(next), /*forced=*/true);
          return ReadChoice::kTook;
        }
        Toggle(op);
        return ReadChoice::kNodeFails;
      }
    }
    return ReadChoice::kNone;
  }

  // Undoes the last linearization and moves the walk past it. A forced operation was
  // its node's only branch: a read-only operation (one that never changes the state)
  // that was linearizable at a node could have been linearized first in any completion
  // of that node: it has no effect, its result matched the state there, and every
  // operation that had to precede it already did. So when everything after it failed,
  // the node itself fails, and the search undoes one more step instead of trying the
  // node's other candidates. Returns false when nothing is left to undo.
  bool Backtrack() {
    while (true) {
      Call call = std::move(calls_.back());
      calls_.pop_back();
      state_ = std::move(call.before);
      const int32_t op = entries_[call.entry].op;
      model_->Linearized(ops_[op], -1);
      Toggle(op);
      Unlift(call.entry);
      if (meta_[op].required) --required_done_;
      entry_ = entries_[call.entry].next;
      if (!call.forced) return true;
      if (calls_.empty()) return false;
    }
  }

  void Unlink(int32_t index) {
    Entry& entry = entries_[index];
    entries_[entry.prev].next = entry.next;
    if (entry.next != kNone) entries_[entry.next].prev = entry.prev;
  }

  void Relink(int32_t index) {
    Entry& entry = entries_[index];
    entries_[entry.prev].next = index;
    if (entry.next != kNone) entries_[entry.next].prev = index;
  }

  // Removes a call entry and its return from the list; Unlift puts them back (in the
  // reverse order, so the links they kept are valid again).
  void Lift(int32_t call) {
    Unlink(call);
    Unlink(entries_[call].match);
  }
  void Unlift(int32_t call) {
    Relink(entries_[call].match);
    Relink(call);
  }

  const M* model_;
  std::vector<Op> ops_;
  std::vector<SearchOp> meta_;
  SearchConfig config_;
  bool exact_;
  size_t words_;
  std::vector<uint64_t> bits_;
  std::vector<uint64_t> bit_arena_;
  std::vector<std::pair<uint64_t, uint64_t>> zobrist_;
  uint64_t lo_ = 0;
  uint64_t hi_ = 0;
  absl::flat_hash_set<MemoKey, MemoHash, MemoEq> memo_;
  std::vector<Entry> entries_;
  int32_t head_ = 0;
  int32_t entry_ = kNone;
  State state_;
  std::vector<Call> calls_;
  size_t required_total_ = 0;
  size_t required_done_ = 0;
  size_t max_depth_ = 0;
  uint64_t steps_ = 0;
  SearchStatus status_ = SearchStatus::kRunning;
  bool fresh_node_ = true;  // The walk is at a node not yet offered its reads.
};

}  // namespace dsim::check::internal

#endif  // DSIM_CHECK_INTERNAL_SEARCH_H_
