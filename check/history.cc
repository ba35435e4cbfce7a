#include "check/history.h"

#include <algorithm>
#include <cctype>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "check/internal/reader.h"

namespace dsim::check {
namespace {

using internal::Datum;

void AppendQuoted(std::string* out, const std::string& text) {
  out->push_back('"');
  for (char c : text) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\t': out->append("\\t"); break;
      case '\r': out->append("\\r"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void AppendEdn(std::string* out, const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kNil: out->append("nil"); return;
    case Value::Kind::kInt: absl::StrAppend(out, value.as_int()); return;
    case Value::Kind::kString: AppendQuoted(out, value.text()); return;
    case Value::Kind::kKeyword: absl::StrAppend(out, ":", value.text()); return;
    case Value::Kind::kList:
      out->push_back('[');
      for (size_t i = 0; i < value.items().size(); ++i) {
        if (i > 0) out->push_back(' ');
        AppendEdn(out, value.items()[i]);
      }
      out->push_back(']');
      return;
  }
}

void AppendJson(std::string* out, const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kNil: out->append("null"); return;
    case Value::Kind::kInt: absl::StrAppend(out, value.as_int()); return;
    case Value::Kind::kString:
    case Value::Kind::kKeyword: AppendQuoted(out, value.text()); return;
    case Value::Kind::kList:
      out->push_back('[');
      for (size_t i = 0; i < value.items().size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendJson(out, value.items()[i]);
      }
      out->push_back(']');
      return;
  }
}

// EDN keywords are written bare when they are simple names, else as strings.
bool IsSimpleName(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '?' ||
           c == '!' || c == '*' || c == '.' || c == '/';
  });
}

absl::Status LineError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", what));
}

// A history value from a datum: booleans become keywords :true/:false (histories
// rarely carry them), floats are refused (the models compare values exactly).
absl::StatusOr<Value> ToValue(const Datum& datum) {
  switch (datum.kind) {
    case Datum::Kind::kNil: return Value();
    case Datum::Kind::kBool: return Value::Keyword(datum.boolean ? "true" : "false");
    case Datum::Kind::kInt: return Value(datum.integer);
    case Datum::Kind::kString: return Value(datum.text);
    case Datum::Kind::kKeyword: return Value::Keyword(datum.text);
    case Datum::Kind::kSymbol: return Value::Keyword(datum.text);
    case Datum::Kind::kFloat:
      return LineError(datum.line, absl::StrCat("floating-point value ", datum.text,
                                                " (values must be integers, strings, "
                                                "keywords, nil or vectors of them)"));
    case Datum::Kind::kList: {
      std::vector<Value> items;
      for (const Datum& item : datum.items) {
        absl::StatusOr<Value> value = ToValue(item);
        if (!value.ok()) return value.status();
        items.push_back(*std::move(value));
      }
      return Value::List(std::move(items));
    }
    case Datum::Kind::kMap:
      return LineError(datum.line, "a map as an operation's value is not supported");
  }
  return Value();
}

// A name field (:f, :type): a keyword or a string.
absl::StatusOr<std::string> NameField(const Datum& map, absl::string_view field) {
  const Datum* datum = map.Find(field);
  if (datum == nullptr) return LineError(map.line, absl::StrCat("operation without :", field));
  if (datum->kind != Datum::Kind::kKeyword && datum->kind != Datum::Kind::kString) {
    return LineError(datum->line, absl::StrCat(":", field, " must be a keyword or a string"));
  }
  return datum->text;
}

// One event from one operation map; nullopt for events to skip (non-integer process).
absl::StatusOr<std::optional<Event>> ToEvent(const Datum& map) {
  if (map.kind != Datum::Kind::kMap) {
    return LineError(map.line, "expected an operation map like {:process 0, :type :invoke, "
                               ":f :read, :value nil}");
  }
  const Datum* process = map.Find("process");
  if (process == nullptr) return LineError(map.line, "operation without :process");
  if (process->kind != Datum::Kind::kInt) return std::optional<Event>();  // :nemesis etc.
  Event event;
  event.process = process->integer;
  absl::StatusOr<std::string> type = NameField(map, "type");
  if (!type.ok()) return type.status();
  if (*type == "invoke") {
    event.type = EventType::kInvoke;
  } else if (*type == "ok") {
    event.type = EventType::kOk;
  } else if (*type == "fail") {
    event.type = EventType::kFail;
  } else if (*type == "info") {
    event.type = EventType::kInfo;
  } else {
    return LineError(map.line, absl::StrCat("unknown :type :", *type,
                                            " (expected :invoke, :ok, :fail or :info)"));
  }
  absl::StatusOr<std::string> f = NameField(map, "f");
  if (!f.ok()) return f.status();
  event.f = *std::move(f);
  if (const Datum* value = map.Find("value"); value != nullptr) {
    absl::StatusOr<Value> converted = ToValue(*value);
    if (!converted.ok()) return converted.status();
    event.value = *std::move(converted);
  }
  if (const Datum* key = map.Find("key"); key != nullptr) {
    absl::StatusOr<Value> converted = ToValue(*key);
    if (!converted.ok()) return converted.status();
    event.key = *std::move(converted);
  }
  if (const Datum* time = map.Find("time"); time != nullptr && time->kind == Datum::Kind::kInt) {
    event.time_ns = time->integer;
  }
  return std::optional<Event>(std::move(event));
}

absl::StatusOr<History> FromData(absl::StatusOr<std::vector<Datum>> data) {
  if (!data.ok()) return data.status();
  // A whole history as one vector of maps reads as those maps.
  std::vector<Datum> forms;
  for (Datum& form : *data) {
    if (form.kind == Datum::Kind::kList) {
      for (Datum& item : form.items) forms.push_back(std::move(item));
    } else {
      forms.push_back(std::move(form));
    }
  }
  History history;
  for (const Datum& form : forms) {
    absl::StatusOr<std::optional<Event>> event = ToEvent(form);
    if (!event.ok()) return event.status();
    if (event->has_value()) history.Add(**std::move(event));
  }
  return history;
}

std::string EventLine(const Event& event, bool json) {
  std::string line;
  if (json) {
    absl::StrAppend(&line, "{\"process\": ", event.process, ", \"type\": \"",
                    EventTypeName(event.type), "\", \"f\": ");
    AppendQuoted(&line, event.f);
    line.append(", \"value\": ");
    AppendJson(&line, event.value);
    if (event.key.has_value()) {
      line.append(", \"key\": ");
      AppendJson(&line, *event.key);
    }
    if (event.time_ns.has_value()) absl::StrAppend(&line, ", \"time\": ", *event.time_ns);
    line.push_back('}');
    return line;
  }
  absl::StrAppend(&line, "{:process ", event.process, ", :type :", EventTypeName(event.type),
                  ", :f ");
  if (IsSimpleName(event.f)) {
    absl::StrAppend(&line, ":", event.f);
  } else {
    AppendQuoted(&line, event.f);
  }
  line.append(", :value ");
  AppendEdn(&line, event.value);
  if (event.key.has_value()) {
    line.append(", :key ");
    AppendEdn(&line, *event.key);
  }
  if (event.time_ns.has_value()) absl::StrAppend(&line, ", :time ", *event.time_ns);
  line.push_back('}');
  return line;
}

}  // namespace

Value Value::Keyword(std::string name) {
  Value value;
  value.kind_ = Kind::kKeyword;
  value.text_ = std::move(name);
  return value;
}

Value Value::List(std::vector<Value> items) {
  Value value;
  value.kind_ = Kind::kList;
  value.items_ = std::move(items);
  return value;
}

std::string Value::ToEdn() const {
  std::string out;
  AppendEdn(&out, *this);
  return out;
}

std::string Value::ToJson() const {
  std::string out;
  AppendJson(&out, *this);
  return out;
}

std::string Value::Short() const {
  std::string text = ToEdn();
  if (text.size() > 60) text = absl::StrCat(text.substr(0, 57), "...");
  return text;
}

bool operator==(const Value& a, const Value& b) {
  if (a.kind_ != b.kind_) return false;
  switch (a.kind_) {
    case Value::Kind::kNil: return true;
    case Value::Kind::kInt: return a.int_ == b.int_;
    case Value::Kind::kString:
    case Value::Kind::kKeyword: return a.text_ == b.text_;
    case Value::Kind::kList: return a.items_ == b.items_;
  }
  return false;
}

const char* EventTypeName(EventType type) {
  switch (type) {
    case EventType::kInvoke: return "invoke";
    case EventType::kOk: return "ok";
    case EventType::kFail: return "fail";
    case EventType::kInfo: return "info";
  }
  return "?";
}

std::string Operation::Describe() const {
  std::string out;
  if (key.has_value()) absl::StrAppend(&out, key->Short(), ": ");
  absl::StrAppend(&out, f);
  if (!input.is_nil()) absl::StrAppend(&out, " ", input.Short());
  if (outcome == Outcome::kOk && !output.is_nil() && output != input) {
    absl::StrAppend(&out, " -> ", output.Short());
  } else if (outcome == Outcome::kOk && output.is_nil() && input.is_nil()) {
    absl::StrAppend(&out, " -> nil");
  }
  if (outcome == Outcome::kInfo) out.append(" (unknown outcome)");
  if (outcome == Outcome::kFail) out.append(" (failed)");
  return out;
}

absl::StatusOr<std::vector<Operation>> History::Operations() const {
  std::vector<Operation> operations;
  absl::flat_hash_map<int64_t, size_t> open;  // Process -> its open operation.
  for (size_t position = 0; position < events_.size(); ++position) {
    const Event& event = events_[position];
    auto it = open.find(event.process);
    if (event.type == EventType::kInvoke) {
      if (it != open.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "event ", position + 1, ": process ", event.process, " invokes ", event.f,
            " while its ", operations[it->second].f, " (event ",
            operations[it->second].call_position + 1,
            ") has not completed; a process runs one operation at a time"));
      }
      Operation op;
      op.id = operations.size();
      op.process = event.process;
      op.f = event.f;
      op.key = event.key;
      op.input = event.value;
      op.outcome = Outcome::kInfo;
      op.call_position = static_cast<int64_t>(position);
      op.call_time_ns = event.time_ns;
      open[event.process] = op.id;
      operations.push_back(std::move(op));
      continue;
    }
    if (it == open.end()) {
      return absl::InvalidArgumentError(absl::StrCat("event ", position + 1, ": process ",
                                                     event.process, " completes ", event.f,
                                                     " (", EventTypeName(event.type),
                                                     ") without an invocation"));
    }
    Operation& op = operations[it->second];
    open.erase(it);
    if (event.f != op.f || (event.key.has_value() && event.key != op.key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "event ", position + 1, ": process ", event.process, " completes ", event.f,
          event.key.has_value() ? " of key " + event.key->Short() : "", " but invoked ", op.f,
          op.key.has_value() ? " of key " + op.key->Short() : ""));
    }
    if (event.type == EventType::kInfo) continue;  // Stays open-ended: return at +inf.
    op.outcome = event.type == EventType::kOk ? Outcome::kOk : Outcome::kFail;
    op.output = event.type == EventType::kOk ? event.value : Value();
    op.return_position = static_cast<int64_t>(position);
    op.return_time_ns = event.time_ns;
  }
  return operations;
}

std::string History::ToEdn() const {
  std::string out;
  for (const Event& event : events_) absl::StrAppend(&out, EventLine(event, false), "\n");
  return out;
}

std::string History::ToJson() const {
  std::string out = "[\n";
  for (size_t i = 0; i < events_.size(); ++i) {
    absl::StrAppend(&out, EventLine(events_[i], true), i + 1 < events_.size() ? ",\n" : "\n");
  }
  out.append("]\n");
  return out;
}

absl::StatusOr<History> History::Parse(absl::string_view text) {
  size_t first = 0;
  while (first < text.size() && std::isspace(static_cast<unsigned char>(text[first]))) ++first;
  absl::string_view rest = text.substr(first);
  auto after = [&](size_t i) {
    while (i < rest.size() && std::isspace(static_cast<unsigned char>(rest[i]))) ++i;
    return i < rest.size() ? rest[i] : '\0';
  };
  bool json = false;
  if (!rest.empty() && rest[0] == '{') json = after(1) == '"';
  if (!rest.empty() && rest[0] == '[') {
    size_t i = 1;
    while (i < rest.size() && std::isspace(static_cast<unsigned char>(rest[i]))) ++i;
    json = i < rest.size() && rest[i] == '{' && after(i + 1) == '"';
  }
  return json ? ParseJson(text) : ParseEdn(text);
}

absl::StatusOr<History> History::ParseEdn(absl::string_view text) {
  return FromData(internal::ReadEdn(text));
}

absl::StatusOr<History> History::ParseJson(absl::string_view text) {
  return FromData(internal::ReadJson(text));
}

History History::FromIntervals(const std::vector<Operation>& operations) {
  struct Stamp {
    int64_t time_ns;
    int order;  // 0: invocation, 1: completion (after invocations at the same time).
    size_t op;
  };
  std::vector<Stamp> stamps;
  for (size_t i = 0; i < operations.size(); ++i) {
    const Operation& op = operations[i];
    stamps.push_back({op.call_time_ns.value_or(0), 0, i});
    if (op.outcome != Outcome::kInfo || op.return_time_ns.has_value()) {
      stamps.push_back({op.return_time_ns.value_or(op.call_time_ns.value_or(0)), 1, i});
    }
  }
  std::stable_sort(stamps.begin(), stamps.end(), [](const Stamp& a, const Stamp& b) {
    return a.time_ns != b.time_ns ? a.time_ns < b.time_ns : a.order < b.order;
  });
  History history;
  for (const Stamp& stamp : stamps) {
    const Operation& op = operations[stamp.op];
    Event event{.process = op.process, .f = op.f, .key = op.key, .time_ns = stamp.time_ns};
    if (stamp.order == 0) {
      event.type = EventType::kInvoke;
      event.value = op.input;
    } else {
      event.type = op.outcome == Outcome::kOk     ? EventType::kOk
                   : op.outcome == Outcome::kFail ? EventType::kFail
                                                  : EventType::kInfo;
      event.value = op.outcome == Outcome::kOk ? op.output : op.input;
    }
    history.Add(std::move(event));
  }
  return history;
}

}  // namespace dsim::check
