// Coverage: which assertion sites, BUGGIFY sites and fault kinds a run (and a sweep)
// reached. This is how a user learns that a fault never fired or a rare state was never
// reached, instead of trusting a green sweep.
//
// Example (what SeedSweep does for you at the end of every sweep):
//
//   dsim::SweepCoverage coverage;
//   for (each seed) coverage.Add(sim.coverage().Summary());   // one seed's RunCoverage
//   std::cerr << coverage.ReportText();                        // hits per site, warnings
//   coverage.WriteJson(path, "Suite.Test", /*shard=*/0, /*shards=*/1);
//   // Shards: MergeCoverageJson({file1, file2, ...}) sums the files of all shards
//   // (the //sim:coverage_merge tool does it from the command line).
//
// Sites. Every DSIM_ALWAYS/SOMETIMES/REACHABLE/UNREACHABLE (sim/assertions.h) and
// DSIM_BUGGIFY (sim/buggify.h) expansion is a Site, registered once when the program
// loads (before main), so a site that no seed ever reached is still known and can be
// reported as never hit. A site's identity is its kind and its name; an unnamed BUGGIFY
// is named by its file's basename and line. Identities never contain pointer values or
// directory names, so reports and JSON of two builds in different places compare.
//
// Threading. The registry is written only during static initialization and read-only
// afterwards. A CoverageRecorder belongs to one simulation (one thread); a SweepCoverage
// to the thread that owns the sweep.
#ifndef DSIM_SIM_COVERAGE_H_
#define DSIM_SIM_COVERAGE_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scheduler/scheduler.h"

namespace dsim {

enum class SiteKind : uint8_t { kAlways, kSometimes, kReachable, kUnreachable, kBuggify };
const char* SiteKindName(SiteKind kind);  // "always", "sometimes", ...

// One assertion or BUGGIFY site in the source. Constant; lives as long as the program.
struct Site {
  SiteKind kind;
  const char* name;  // The user's name; "" for an unnamed BUGGIFY.
  const char* file;  // __FILE__ (only the basename is shown).
  int line;
};

// "sometimes leader elected", "buggify kv.cc:42": the site's identity in reports.
std::string SiteKey(const Site& site);
// "kv.cc:42".
std::string SiteLocation(const Site& site);

// Every site of the program, in key order (then location).
std::vector<const Site*> RegisteredSites();

namespace internal {
bool RegisterSite(const Site* site);
// One instance per site: its initializer registers the site when the program loads.
template <const Site* kSite>
struct SiteRegistrar {
  static const bool registered;
};
template <const Site* kSite>
const bool SiteRegistrar<kSite>::registered = RegisterSite(kSite);
}  // namespace internal

// Code-site BUGGIFY probabilities (FoundationDB's defaults).
struct BuggifySiteOptions {
  // Off: every DSIM_BUGGIFY is false and draws nothing.
  bool enabled = true;
  // Chance that a site is switched on for a run, decided the first time it is reached.
  double site_probability = 0.25;
  // Chance that a switched-on site fires, each time it is reached.
  double fire_probability = 0.25;
};

// What one run reached: sorted, duplicate-free keys.
struct RunCoverage {
  std::vector<std::string> properties_hit;   // SOMETIMES true / REACHABLE reached.
  std::vector<std::string> properties_seen;  // SOMETIMES evaluated at all.
  std::vector<std::string> buggify_enabled;  // Sites switched on this run.
  std::vector<std::string> buggify_fired;    // Sites that fired at least once.
  std::vector<std::string> faults;           // Fault kinds applied ("fault.partition").
  // For each key of AllKeys(): how many strategy decisions the run had made when it
  // was first hit. Guided search branches there (sim/guided_search.h).
  std::map<std::string, uint64_t> first_hit_decision;
  // Every key: properties hit, "fired buggify ..." and fault kinds.
  std::vector<std::string> AllKeys() const;
};

// Per-simulation recorder: the assertion and BUGGIFY macros report here, and it
// listens for "fault.*" annotations (registered with Scheduler::AddAnnotationListener
// and that prefix, so no other event reaches it). Owned by a Simulation
// (Simulation::coverage()).
class CoverageRecorder final : public SchedulerListener {
 public:
  CoverageRecorder(Scheduler* scheduler, BuggifySiteOptions buggify);

  // An assertion site was evaluated. Fails the run (Scheduler::Fail) when an ALWAYS
  // is false or an UNREACHABLE is reached.
  void OnAssertion(const Site& site, bool condition);
  // A BUGGIFY site was reached: whether it fires now (see sim/buggify.h).
  bool Buggify(const Site& site);
  // After this, BUGGIFY sites never fire again (the liveness phase heals everything).
  void StopBuggify() { buggify_stopped_ = true; }
  const BuggifySiteOptions& buggify_options() const { return buggify_; }

  RunCoverage Summary() const;
  // The first failed ALWAYS/UNREACHABLE, "" if none.
  const std::string& first_violation() const { return first_violation_; }

  void OnAnnotation(const Annotation& annotation) override;

 private:
  struct BuggifyState {
    bool enabled = false;
    uint64_t fired = 0;
  };
  void NoteFirstHit(std::string key);
  Scheduler* scheduler_;
  BuggifySiteOptions buggify_;
  bool buggify_stopped_ = false;
  // Keyed by site address for lookup only; Summary() sorts, nothing iterates these
  // in hash order to decide anything.
  absl::flat_hash_map<const Site*, bool> properties_;  // Site -> hit.
  absl::flat_hash_map<const Site*, BuggifyState> buggify_sites_;
  std::set<std::string> faults_;
  std::map<std::string, uint64_t> first_hit_decision_;
  std::string first_violation_;
};

struct CoverageOptions {
  // Print a coverage report at the end of every sweep (to the sweep's log).
  bool report = true;
  // A SOMETIMES/REACHABLE site or BUGGIFY site that no seed hit fails the sweep
  // (otherwise it is a warning). With Bazel shards, use the merge tool's
  // --fail_on_never_hit instead: a shard sees only its share of the seeds.
  bool fail_on_never_hit = false;
  // Only sites whose file's basename is listed (e.g. "lease_test.cc") take part in
  // never-hit warnings; empty: every site of the program.
  std::vector<std::string> files;
};

// Counts across the seeds of a sweep (or several shards' sweeps).
class SweepCoverage {
 public:
  void Add(const RunCoverage& run);
  // Adds another sweep's (shard's) counts.
  void Merge(const SweepCoverage& other);

  uint64_t seeds() const { return seeds_; }
  // Seeds that hit a key ("sometimes x", "buggify f.cc:3", "fault.partition"); 0 if none.
  uint64_t SeedsHit(const std::string& key) const;
  uint64_t SeedsBuggifyFired(const std::string& key) const;
  uint64_t SeedsFault(const std::string& kind) const;

  // The registered sites (filtered by `options.files`) that no seed hit: SOMETIMES,
  // REACHABLE and BUGGIFY (fired). Keys.
  std::vector<std::string> NeverHit(const CoverageOptions& options) const;
  // The human-readable report; ends with a WARNING line per never-hit site.
  std::string ReportText(const CoverageOptions& options) const;

  // JSON, one record per line (the merge tool reads it back).
  std::string ToJson(absl::string_view test_name, int shard, int total_shards) const;
  static absl::StatusOr<SweepCoverage> FromJson(absl::string_view json);

 private:
  uint64_t seeds_ = 0;
  std::map<std::string, uint64_t> hit_;        // properties: seeds where hit.
  std::map<std::string, uint64_t> seen_;       // SOMETIMES evaluated.
  std::map<std::string, uint64_t> enabled_;    // buggify: seeds enabled.
  std::map<std::string, uint64_t> fired_;      // buggify: seeds fired.
  std::map<std::string, uint64_t> faults_;     // fault kinds: seeds applied.
  std::map<std::string, std::string> where_;   // key -> "file.cc:12" when known.
};

// Reads and sums coverage JSON files (one per shard).
absl::StatusOr<SweepCoverage> MergeCoverageFiles(const std::vector<std::string>& paths);

}  // namespace dsim

#endif  // DSIM_SIM_COVERAGE_H_
