// check_history: is a recorded history linearizable?
//
//   ./bazelw run //sim:check_history -- --model=kv --html=/tmp/h.html /path/history.edn
//   ... | ./bazelw run //sim:check_history -- --model=register -      # from stdin
//
// Reads a history in Jepsen's EDN format (one operation map per line, as
// history.edn) or in JSON (check/history.h), checks it against a model
// (check/linearizability.h), and prints, for a violation, the smallest failing prefix
// and a longest linearization of each failing key, then, as its LAST line, exactly one
// of `linearizable`, `not linearizable`, `unknown`.
//
// Exit status: 0 linearizable, 1 not linearizable, 2 unknown (the budget ran out),
// 3 the command line or the history is bad (a message on stderr says what; nothing is
// printed on stdout). Never anything else for bad input.
//
// Flags (--name=value or --name value):
//   --model=register|kv|set|queue|counter   default: kv if any event has a :key,
//                                           else register
//   --html=<path>       write the picture of the check there (check/html.h)
//   --format=auto|edn|json                  default auto (by the first characters)
//   --budget=<duration> wall-clock budget, e.g. 10s, 500ms (default 60s)
//   --max_steps=<n>     search steps per partition (default: no limit)
//   --quiet             print only the verdict line
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "check/history.h"
#include "check/html.h"
#include "check/linearizability.h"

namespace {

constexpr int kUsageError = 3;

constexpr const char* kUsage =
    "usage: check_history [--model=register|kv|set|queue|counter] [--html=PATH]\n"
    "                     [--format=auto|edn|json] [--budget=60s] [--max_steps=N] [--quiet]\n"
    "                     HISTORY_FILE|-\n"
    "exit: 0 linearizable, 1 not linearizable, 2 unknown, 3 bad command line or history\n";

struct Flags {
  std::string model;
  std::string html;
  std::string format = "auto";
  absl::Duration budget = absl::Seconds(60);
  uint64_t max_steps = 0;
  bool quiet = false;
  std::string input;
};

int UsageError(const std::string& message) {
  std::cerr << "check_history: " << message << "\n" << kUsage;
  return kUsageError;
}

// Parses argv; on error returns the message.
std::optional<std::string> ParseFlags(int argc, char** argv, Flags* flags) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-" || !absl::StartsWith(arg, "--")) {
      if (!flags->input.empty()) return "more than one history file given";
      flags->input = arg;
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "quiet") {
      flags->quiet = true;
      continue;
    }
    if (name == "help") return "";
    if (!value.has_value()) {
      if (i + 1 >= args.size()) return absl::StrCat("--", name, " needs a value");
      value = args[++i];
    }
    if (name == "model") {
      flags->model = *value;
    } else if (name == "html") {
      flags->html = *value;
    } else if (name == "format") {
      if (*value != "auto" && *value != "edn" && *value != "json") {
        return absl::StrCat("--format must be auto, edn or json, not \"", *value, "\"");
      }
      flags->format = *value;
    } else if (name == "budget") {
      if (!absl::ParseDuration(*value, &flags->budget) || flags->budget <= absl::ZeroDuration()) {
        return absl::StrCat("--budget needs a positive duration like 10s or 500ms, not \"",
                            *value, "\"");
      }
    } else if (name == "max_steps") {
      if (!absl::SimpleAtoi(*value, &flags->max_steps)) {
        return absl::StrCat("--max_steps needs a number, not \"", *value, "\"");
      }
    } else {
      return absl::StrCat("unknown flag --", name);
    }
  }
  if (flags->input.empty()) return "no history file given (use - for stdin)";
  return std::nullopt;
}

std::optional<std::string> ReadAll(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (std::optional<std::string> error = ParseFlags(argc, argv, &flags); error.has_value()) {
    if (error->empty()) {
      std::cout << kUsage;
      return 0;
    }
    return UsageError(*error);
  }
  const std::optional<std::string> text = ReadAll(flags.input);
  if (!text.has_value()) return UsageError(absl::StrCat("cannot read ", flags.input));
  absl::StatusOr<dsim::check::History> history =
      flags.format == "edn"    ? dsim::check::History::ParseEdn(*text)
      : flags.format == "json" ? dsim::check::History::ParseJson(*text)
                               : dsim::check::History::Parse(*text);
  if (!history.ok()) {
    std::cerr << "check_history: " << flags.input << ": " << history.status().message() << "\n";
    return kUsageError;
  }
  if (flags.model.empty()) {
    flags.model = "register";
    for (const dsim::check::Event& event : history->events()) {
      if (event.key.has_value()) flags.model = "kv";
    }
  }
  const std::optional<dsim::check::Model> model = dsim::check::ModelByName(flags.model);
  if (!model.has_value()) {
    return UsageError(absl::StrCat("unknown model \"", flags.model,
                                   "\" (register, kv, set, queue or counter)"));
  }
  dsim::check::CheckOptions options;
  options.time_budget = flags.budget;
  options.max_steps = flags.max_steps;
  const dsim::check::CheckResult result =
      dsim::check::CheckLinearizability(*history, *model, options);
  if (!result.error.ok()) {
    std::cerr << "check_history: " << flags.input << ": " << result.error.message() << "\n";
    return kUsageError;
  }
  if (!flags.html.empty()) {
    dsim::check::HtmlOptions html;
    html.title = absl::StrCat("check_history ", flags.input);
    const absl::Status written = dsim::check::WriteHtml(result, flags.html, html);
    if (!written.ok()) {
      std::cerr << "check_history: " << written.message() << "\n";
      return kUsageError;
    }
  }
  if (!flags.quiet) {
    std::cout << result.Explain();
    if (!flags.html.empty()) std::cout << "html: " << flags.html << "\n";
  }
  std::cout << dsim::check::VerdictName(result.verdict) << "\n";
  switch (result.verdict) {
    case dsim::check::Verdict::kLinearizable: return 0;
    case dsim::check::Verdict::kNotLinearizable: return 1;
    case dsim::check::Verdict::kUnknown: return 2;
  }
  return 2;
}
