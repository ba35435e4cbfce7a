#include "sim/coverage.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "scheduler/internal/check.h"

namespace dsim {
namespace {

// Written only during static initialization (before main), read-only afterwards.
std::vector<const Site*>& Registry() {
  static std::vector<const Site*>* registry = new std::vector<const Site*>();
  return *registry;
}

absl::string_view Basename(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// Values of fault.buggify.* decisions: the top `probability` of the range means yes, so
// 0 (where shrinking goes) means no.
bool Chance(Scheduler& scheduler, double probability, const char* label) {
  if (!(probability > 0)) return false;
  if (probability >= 1) return true;
  constexpr uint64_t kRange = uint64_t{1} << 24;
  const auto yes = static_cast<uint64_t>(probability * kRange + 0.5);
  if (yes == 0) return false;
  return scheduler.ChooseValue(kRange, label) >= kRange - yes;
}

std::vector<std::string> Sorted(std::vector<std::string> keys) {
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

void Count(std::map<std::string, uint64_t>& counts, const std::vector<std::string>& keys) {
  for (const std::string& key : keys) ++counts[key];
}

uint64_t Lookup(const std::map<std::string, uint64_t>& counts, const std::string& key) {
  auto it = counts.find(key);
  return it == counts.end() ? 0 : it->second;
}

bool TakesPartInNeverHit(const Site& site, const CoverageOptions& options) {
  if (site.kind == SiteKind::kAlways || site.kind == SiteKind::kUnreachable) return false;
  if (options.files.empty()) return true;
  const absl::string_view base = Basename(site.file);
  return std::find(options.files.begin(), options.files.end(), base) != options.files.end();
}

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Parses the flat records ToJson writes: {"k":"v","n":3,...} on one line.
absl::StatusOr<std::map<std::string, std::string>> ParseRecord(absl::string_view line) {
  std::map<std::string, std::string> fields;
  size_t i = line.find('{');
  if (i == absl::string_view::npos) return absl::InvalidArgumentError("no record");
  ++i;
  auto read_string = [&](std::string* out) -> bool {
    if (i >= line.size() || line[i] != '"') return false;
    for (++i; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) {
        ++i;
        if (line[i] == 'u' && i + 4 < line.size()) {
          int code = 0;
          if (!absl::SimpleHexAtoi(line.substr(i + 1, 4), &code)) return false;
          *out += static_cast<char>(code);
          i += 4;
          continue;
        }
      }
      *out += line[i];
    }
    if (i >= line.size()) return false;
    ++i;
    return true;
  };
  while (i < line.size() && line[i] != '}') {
    if (line[i] == ',' || line[i] == ' ') {
      ++i;
      continue;
    }
    std::string key, value;
    if (!read_string(&key) || i >= line.size() || line[i] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("bad record: ", line));
    }
    ++i;
    if (i < line.size() && line[i] == '"') {
      if (!read_string(&value)) return absl::InvalidArgumentError(absl::StrCat("bad string: ", line));
    } else {
      while (i < line.size() && line[i] != ',' && line[i] != '}') value += line[i++];
    }
    fields[key] = value;
  }
  return fields;
}

}  // namespace

const char* SiteKindName(SiteKind kind) {
  switch (kind) {
    case SiteKind::kAlways: return "always";
    case SiteKind::kSometimes: return "sometimes";
    case SiteKind::kReachable: return "reachable";
    case SiteKind::kUnreachable: return "unreachable";
    case SiteKind::kBuggify: return "buggify";
  }
  return "?";
}

std::string SiteLocation(const Site& site) {
  return absl::StrCat(Basename(site.file), ":", site.line);
}

std::string SiteKey(const Site& site) {
  const absl::string_view name(site.name);
  return absl::StrCat(SiteKindName(site.kind), " ", name.empty() ? SiteLocation(site) : name);
}

std::vector<const Site*> RegisteredSites() {
  std::vector<const Site*> sites = Registry();
  std::sort(sites.begin(), sites.end(), [](const Site* a, const Site* b) {
    return std::make_pair(SiteKey(*a), SiteLocation(*a)) <
           std::make_pair(SiteKey(*b), SiteLocation(*b));
  });
  return sites;
}

namespace internal {
bool RegisterSite(const Site* site) {
  Registry().push_back(site);
  return true;
}
}  // namespace internal

std::vector<std::string> RunCoverage::AllKeys() const {
  std::vector<std::string> keys = properties_hit;
  for (const std::string& k : buggify_fired) keys.push_back(absl::StrCat("fired ", k));
  for (const std::string& k : faults) keys.push_back(k);
  return Sorted(std::move(keys));
}

// ---- CoverageRecorder --------------------------------------------------------------

CoverageRecorder::CoverageRecorder(Scheduler* scheduler, BuggifySiteOptions buggify)
    : scheduler_(scheduler), buggify_(buggify) {
  DSIM_MISUSE(buggify_.site_probability >= 0 && buggify_.site_probability <= 1 &&
                  buggify_.fire_probability >= 0 && buggify_.fire_probability <= 1,
              "BuggifySiteOptions probabilities must lie in [0, 1]");
}

void CoverageRecorder::NoteFirstHit(std::string key) {
  first_hit_decision_.emplace(std::move(key), scheduler_->decisions());
}

void CoverageRecorder::OnAssertion(const Site& site, bool condition) {
  const bool hit = site.kind == SiteKind::kSometimes ? condition : true;
  bool& recorded = properties_[&site];
  if (hit && !recorded &&
      (site.kind == SiteKind::kSometimes || site.kind == SiteKind::kReachable)) {
    NoteFirstHit(SiteKey(site));
  }
  recorded = recorded || hit;
  const bool violated = (site.kind == SiteKind::kAlways && !condition) ||
                        site.kind == SiteKind::kUnreachable;
  if (!violated) return;
  const std::string what =
      site.kind == SiteKind::kAlways
          ? absl::StrCat("DSIM_ALWAYS(\"", site.name, "\") failed at ", SiteLocation(site))
          : absl::StrCat("DSIM_UNREACHABLE(\"", site.name, "\") reached at ", SiteLocation(site));
  if (first_violation_.empty()) first_violation_ = what;
  scheduler_->Annotate(Annotation{.category = "assertion.violated", .detail = what});
  scheduler_->Fail(what);
}

bool CoverageRecorder::Buggify(const Site& site) {
  if (!buggify_.enabled || buggify_stopped_) return false;
  auto [it, first] = buggify_sites_.try_emplace(&site);
  BuggifyState& state = it->second;
  if (first) state.enabled = Chance(*scheduler_, buggify_.site_probability, "fault.buggify.site");
  if (!state.enabled) return false;
  if (!Chance(*scheduler_, buggify_.fire_probability, "fault.buggify.fire")) return false;
  if (state.fired++ == 0) NoteFirstHit(absl::StrCat("fired ", SiteKey(site)));
  if (scheduler_->has_listeners()) {
    const std::string detail = SiteKey(site);
    scheduler_->Annotate(Annotation{.category = "buggify", .detail = detail});
  }
  return true;
}

void CoverageRecorder::OnAnnotation(const Annotation& annotation) {
  if (!absl::StartsWith(annotation.category, "fault.")) return;
  auto [it, added] = faults_.emplace(annotation.category.data(), annotation.category.size());
  if (added) NoteFirstHit(*it);
}

RunCoverage CoverageRecorder::Summary() const {
  RunCoverage out;
  for (const auto& [site, hit] : properties_) {
    if (site->kind == SiteKind::kSometimes) out.properties_seen.push_back(SiteKey(*site));
    if (hit && (site->kind == SiteKind::kSometimes || site->kind == SiteKind::kReachable)) {
      out.properties_hit.push_back(SiteKey(*site));
    }
  }
  for (const auto& [site, state] : buggify_sites_) {
    if (state.enabled) out.buggify_enabled.push_back(SiteKey(*site));
    if (state.fired > 0) out.buggify_fired.push_back(SiteKey(*site));
  }
  out.faults.assign(faults_.begin(), faults_.end());
  out.first_hit_decision = first_hit_decision_;
  out.properties_hit = Sorted(std::move(out.properties_hit));
  out.properties_seen = Sorted(std::move(out.properties_seen));
  out.buggify_enabled = Sorted(std::move(out.buggify_enabled));
  out.buggify_fired = Sorted(std::move(out.buggify_fired));
  return out;
}

// ---- SweepCoverage -----------------------------------------------------------------

void SweepCoverage::Add(const RunCoverage& run) {
  ++seeds_;
  Count(hit_, run.properties_hit);
  Count(seen_, run.properties_seen);
  Count(enabled_, run.buggify_enabled);
  Count(fired_, run.buggify_fired);
  Count(faults_, run.faults);
}

void SweepCoverage::Merge(const SweepCoverage& other) {
  seeds_ += other.seeds_;
  for (auto [mine, theirs] : {std::make_pair(&hit_, &other.hit_), std::make_pair(&seen_, &other.seen_),
                              std::make_pair(&enabled_, &other.enabled_),
                              std::make_pair(&fired_, &other.fired_),
                              std::make_pair(&faults_, &other.faults_)}) {
    for (const auto& [key, n] : *theirs) (*mine)[key] += n;
  }
  for (const auto& [key, where] : other.where_) where_.emplace(key, where);
}

uint64_t SweepCoverage::SeedsHit(const std::string& key) const { return Lookup(hit_, key); }
uint64_t SweepCoverage::SeedsBuggifyFired(const std::string& key) const {
  return Lookup(fired_, key);
}
uint64_t SweepCoverage::SeedsFault(const std::string& kind) const { return Lookup(faults_, kind); }

std::vector<std::string> SweepCoverage::NeverHit(const CoverageOptions& options) const {
  std::vector<std::string> out;
  for (const Site* site : RegisteredSites()) {
    if (!TakesPartInNeverHit(*site, options)) continue;
    const std::string key = SiteKey(*site);
    const uint64_t hits = site->kind == SiteKind::kBuggify ? Lookup(fired_, key) : Lookup(hit_, key);
    if (hits == 0) out.push_back(key);
  }
  // Sites known only from merged files (another binary's shards) count too.
  for (const auto& [key, where] : where_) {
    const bool buggify = absl::StartsWith(key, "buggify ");
    const bool property = absl::StartsWith(key, "sometimes ") || absl::StartsWith(key, "reachable ");
    if (!buggify && !property) continue;
    if (!options.files.empty()) {
      const absl::string_view file = absl::string_view(where).substr(0, where.rfind(':'));
      if (std::find(options.files.begin(), options.files.end(), file) == options.files.end()) continue;
    }
    if ((buggify ? Lookup(fired_, key) : Lookup(hit_, key)) == 0) out.push_back(key);
  }
  return Sorted(std::move(out));
}

std::string SweepCoverage::ReportText(const CoverageOptions& options) const {
  std::map<std::string, std::string> where = where_;
  for (const Site* site : RegisteredSites()) where.emplace(SiteKey(*site), SiteLocation(*site));
  std::set<std::string> properties, buggify;
  for (const auto& [key, place] : where) {
    if (absl::StartsWith(key, "buggify ")) buggify.insert(key);
    if (absl::StartsWith(key, "sometimes ") || absl::StartsWith(key, "reachable ")) {
      properties.insert(key);
    }
  }
  for (const auto& [key, n] : hit_) properties.insert(key);
  for (const auto& [key, n] : fired_) buggify.insert(key);
  for (const auto& [key, n] : enabled_) buggify.insert(key);
  if (properties.empty() && buggify.empty() && faults_.empty()) return "";
  std::string out = absl::StrCat("dsim coverage over ", seeds_, " seeds:\n");
  auto place = [&](const std::string& key) {
    auto it = where.find(key);
    return it == where.end() ? std::string() : absl::StrCat(" (", it->second, ")");
  };
  for (const std::string& key : properties) {
    absl::StrAppend(&out, absl::StrFormat("  %-48s hit in %d of %d seeds%s\n", key,
                                          Lookup(hit_, key), seeds_, place(key)));
  }
  for (const std::string& key : buggify) {
    absl::StrAppend(&out, absl::StrFormat("  %-48s fired in %d of %d seeds (enabled in %d)\n",
                                          key, Lookup(fired_, key), seeds_, Lookup(enabled_, key)));
  }
  for (const auto& [kind, n] : faults_) {
    absl::StrAppend(&out, absl::StrFormat("  %-48s applied in %d of %d seeds\n", kind, n, seeds_));
  }
  for (const std::string& key : NeverHit(options)) {
    absl::StrAppend(&out, "  WARNING: ", key, place(key), " was never ",
                    absl::StartsWith(key, "buggify ") ? "fired" : "hit", " in ", seeds_,
                    " seeds\n");
  }
  return out;
}

std::string SweepCoverage::ToJson(absl::string_view test_name, int shard, int total_shards) const {
  std::map<std::string, std::string> where = where_;
  for (const Site* site : RegisteredSites()) where.emplace(SiteKey(*site), SiteLocation(*site));
  std::string out = "[\n";
  absl::StrAppend(&out, "{\"record\":\"sweep\",\"version\":1,\"test\":", JsonString(test_name),
                  ",\"seeds\":", seeds_, ",\"shard\":", shard, ",\"total_shards\":", total_shards,
                  "}");
  auto record = [&](absl::string_view kind, const std::string& key, uint64_t a, uint64_t b) {
    auto it = where.find(key);
    absl::StrAppend(&out, ",\n{\"record\":", JsonString(kind), ",\"key\":", JsonString(key),
                    ",\"location\":", JsonString(it == where.end() ? "" : it->second),
                    ",\"seeds\":", a, ",\"seeds_other\":", b, "}");
  };
  std::set<std::string> keys;
  for (const auto& [key, unused] : where) keys.insert(key);
  for (const auto& [key, n] : hit_) keys.insert(key);
  for (const auto& [key, n] : enabled_) keys.insert(key);
  for (const std::string& key : keys) {
    if (absl::StartsWith(key, "buggify ")) {
      record("buggify", key, Lookup(fired_, key), Lookup(enabled_, key));
    } else if (absl::StartsWith(key, "sometimes ") || absl::StartsWith(key, "reachable ")) {
      record("property", key, Lookup(hit_, key), Lookup(seen_, key));
    }
  }
  for (const auto& [kind, n] : faults_) record("fault", kind, n, 0);
  absl::StrAppend(&out, "\n]\n");
  return out;
}

absl::StatusOr<SweepCoverage> SweepCoverage::FromJson(absl::string_view json) {
  SweepCoverage out;
  for (absl::string_view line : absl::StrSplit(json, '\n')) {
    if (!absl::StrContains(line, "\"record\"")) continue;
    absl::StatusOr<std::map<std::string, std::string>> fields = ParseRecord(line);
    if (!fields.ok()) return fields.status();
    std::map<std::string, std::string>& f = *fields;
    uint64_t a = 0, b = 0;
    if (f["record"] == "sweep") {
      if (f["version"] != "1") return absl::InvalidArgumentError("unknown coverage version");
      if (!absl::SimpleAtoi(f["seeds"], &out.seeds_)) return absl::InvalidArgumentError("bad seeds");
      continue;
    }
    if (!absl::SimpleAtoi(f["seeds"], &a) || !absl::SimpleAtoi(f["seeds_other"], &b)) {
      return absl::InvalidArgumentError(absl::StrCat("bad counts: ", line));
    }
    const std::string& key = f["key"];
    if (!f["location"].empty()) out.where_[key] = f["location"];
    if (f["record"] == "buggify") {
      if (a > 0) out.fired_[key] = a;
      if (b > 0) out.enabled_[key] = b;
    } else if (f["record"] == "property") {
      if (a > 0) out.hit_[key] = a;
      if (b > 0) out.seen_[key] = b;
    } else if (f["record"] == "fault") {
      out.faults_[key] = a;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown record: ", line));
    }
  }
  return out;
}

absl::StatusOr<SweepCoverage> MergeCoverageFiles(const std::vector<std::string>& paths) {
  SweepCoverage total;
  for (const std::string& path : paths) {
    std::ifstream in(path);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<SweepCoverage> one = SweepCoverage::FromJson(text.str());
    if (!one.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", one.status().message()));
    total.Merge(*one);
  }
  return total;
}

}  // namespace dsim
