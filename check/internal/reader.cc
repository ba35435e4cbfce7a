#include "check/internal/reader.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dsim::check::internal {
namespace {

// Nesting deeper than this is an error, not a stack overflow.
constexpr int kMaxDepth = 200;

bool IsEdnDelimiter(char c) {
  return std::isspace(static_cast<unsigned char>(c)) || c == ',' || c == '{' || c == '}' ||
         c == '[' || c == ']' || c == '(' || c == ')' || c == '"' || c == ';';
}

// A cursor over the text that tracks the line, shared by both readers.
class Cursor {
 public:
  explicit Cursor(absl::string_view text) : text_(text) {}

  bool done() const { return pos_ >= text_.size(); }
  char peek() const { return done() ? '\0' : text_[pos_]; }
  char next() {
    const char c = text_[pos_++];
    if (c == '\n') ++line_;
    return c;
  }
  int line() const { return line_; }
  size_t pos() const { return pos_; }
  absl::string_view text() const { return text_; }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("line ", line_, ": ", what));
  }

 private:
  absl::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
};

// Reads the body of a "..." string after its opening quote. EDN and JSON share the
// escapes histories use: \" \\ \n \t \r \/ \b \f and \uXXXX (kept as UTF-8).
absl::Status ReadStringBody(Cursor& in, std::string* out) {
  while (true) {
    if (in.done()) return in.Error("unterminated string");
    char c = in.next();
    if (c == '"') return absl::OkStatus();
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (in.done()) return in.Error("unterminated string");
    c = in.next();
    switch (c) {
      case 'n': out->push_back('\n'); break;
      case 't': out->push_back('\t'); break;
      case 'r': out->push_back('\r'); break;
      case 'b': out->push_back('\b'); break;
      case 'f': out->push_back('\f'); break;
      case '"': case '\\': case '/': out->push_back(c); break;
      case 'u': {
        uint32_t code = 0;
        for (int i = 0; i < 4; ++i) {
          if (in.done() || !std::isxdigit(static_cast<unsigned char>(in.peek()))) {
            return in.Error("bad \\u escape in string");
          }
          const char h = in.next();
          code = code * 16 + (std::isdigit(static_cast<unsigned char>(h))
                                  ? h - '0'
                                  : std::tolower(static_cast<unsigned char>(h)) - 'a' + 10);
        }
        if (code < 0x80) {
          out->push_back(static_cast<char>(code));
        } else if (code < 0x800) {
          out->push_back(static_cast<char>(0xC0 | (code >> 6)));
          out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
        } else {
          out->push_back(static_cast<char>(0xE0 | (code >> 12)));
          out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
          out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
        }
        break;
      }
      default: return in.Error(absl::StrCat("unknown escape \\", std::string(1, c), " in string"));
    }
  }
}

// A number token: integer (kept) or float (kept only as "a float").
absl::Status ParseNumber(Cursor& in, absl::string_view token, Datum* out) {
  absl::string_view digits = token;
  if (!digits.empty() && (digits.back() == 'N' || digits.back() == 'M')) digits.remove_suffix(1);
  int64_t value = 0;
  if (absl::SimpleAtoi(digits, &value)) {
    out->kind = Datum::Kind::kInt;
    out->integer = value;
    return absl::OkStatus();
  }
  double ignored = 0;
  if (absl::SimpleAtod(digits, &ignored)) {
    out->kind = Datum::Kind::kFloat;
    out->text = std::string(token);
    return absl::OkStatus();
  }
  return in.Error(absl::StrCat("bad number \"", token, "\""));
}

class EdnReader {
 public:
  explicit EdnReader(absl::string_view text) : in_(text) {}

  absl::StatusOr<std::vector<Datum>> ReadAll() {
    std::vector<Datum> forms;
    while (true) {
      SkipSpace();
      if (in_.done()) return forms;
      Datum form;
      absl::Status read = ReadForm(&form, 0);
      if (!read.ok()) return read;
      forms.push_back(std::move(form));
    }
  }

 private:
  void SkipSpace() {
    while (!in_.done()) {
      const char c = in_.peek();
      if (c == ';') {
        while (!in_.done() && in_.peek() != '\n') in_.next();
      } else if (std::isspace(static_cast<unsigned char>(c)) || c == ',') {
        in_.next();
      } else {
        return;
      }
    }
  }

  std::string Token() {
    std::string token;
    while (!in_.done() && !IsEdnDelimiter(in_.peek())) token.push_back(in_.next());
    return token;
  }

  absl::Status ReadSequence(char close, std::vector<Datum>* items, int depth) {
    while (true) {
      SkipSpace();
      if (in_.done()) return in_.Error(absl::StrCat("missing '", std::string(1, close), "'"));
      if (in_.peek() == close) {
        in_.next();
        return absl::OkStatus();
      }
      Datum item;
      absl::Status read = ReadForm(&item, depth + 1);
      if (!read.ok()) return read;
      items->push_back(std::move(item));
    }
  }

  absl::Status ReadForm(Datum* out, int depth) {
    if (depth > kMaxDepth) return in_.Error("nested too deeply");
    SkipSpace();
    if (in_.done()) return in_.Error("unexpected end of input");
    out->line = in_.line();
    const char c = in_.peek();
    switch (c) {
      case '{': {
        in_.next();
        std::vector<Datum> items;
        absl::Status read = ReadSequence('}', &items, depth);
        if (!read.ok()) return read;
        if (items.size() % 2 != 0) return in_.Error("a map needs an even number of forms");
        out->kind = Datum::Kind::kMap;
        for (size_t i = 0; i < items.size(); i += 2) {
          out->entries.emplace_back(std::move(items[i]), std::move(items[i + 1]));
        }
        return absl::OkStatus();
      }
      case '[':
      case '(':
        in_.next();
        out->kind = Datum::Kind::kList;
        return ReadSequence(c == '[' ? ']' : ')', &out->items, depth);
      case '}': case ']': case ')':
        return in_.Error(absl::StrCat("unexpected '", std::string(1, c), "'"));
      case '"':
        in_.next();
        out->kind = Datum::Kind::kString;
        return ReadStringBody(in_, &out->text);
      case '#': return ReadDispatch(out, depth);
      case ':': {
        in_.next();
        out->kind = Datum::Kind::kKeyword;
        out->text = Token();
        if (out->text.empty()) return in_.Error("empty keyword");
        return absl::OkStatus();
      }
      case '\\': {  // A character literal: kept as a one-letter string.
        in_.next();
        out->kind = Datum::Kind::kString;
        out->text = in_.done() ? "" : std::string(1, in_.next());
        const std::string rest = Token();
        if (!rest.empty()) out->text += rest;
        return absl::OkStatus();
      }
      default: break;
    }
    const std::string token = Token();
    if (token.empty()) return in_.Error(absl::StrCat("unexpected '", std::string(1, c), "'"));
    if (token == "nil") return absl::OkStatus();
    if (token == "true" || token == "false") {
      out->kind = Datum::Kind::kBool;
      out->boolean = token == "true";
      return absl::OkStatus();
    }
    const char first = token[0];
    if (std::isdigit(static_cast<unsigned char>(first)) ||
        ((first == '-' || first == '+') && token.size() > 1 &&
         std::isdigit(static_cast<unsigned char>(token[1])))) {
      return ParseNumber(in_, token, out);
    }
    out->kind = Datum::Kind::kSymbol;
    out->text = token;
    return absl::OkStatus();
  }

  // '#': a set #{...}, a discard #_ x, or a tagged element #tag x (read as x).
  absl::Status ReadDispatch(Datum* out, int depth) {
    in_.next();
    if (in_.peek() == '{') {
      in_.next();
      out->kind = Datum::Kind::kList;
      return ReadSequence('}', &out->items, depth);
    }
    if (in_.peek() == '_') {
      in_.next();
      Datum discarded;
      absl::Status read = ReadForm(&discarded, depth + 1);
      if (!read.ok()) return read;
      return ReadForm(out, depth + 1);
    }
    const std::string tag = Token();
    if (tag.empty()) return in_.Error("'#' without a tag");
    return ReadForm(out, depth + 1);
  }

  Cursor in_;
};

class JsonReader {
 public:
  explicit JsonReader(absl::string_view text) : in_(text) {}

  absl::StatusOr<std::vector<Datum>> ReadAll() {
    std::vector<Datum> values;
    while (true) {
      SkipSpace();
      if (in_.done()) return values;
      Datum value;
      absl::Status read = ReadValue(&value, 0);
      if (!read.ok()) return read;
      values.push_back(std::move(value));
      SkipSpace();
      if (!in_.done() && in_.peek() == ',') in_.next();  // Tolerate "a,\nb" lines.
    }
  }

 private:
  void SkipSpace() {
    while (!in_.done() && std::isspace(static_cast<unsigned char>(in_.peek()))) in_.next();
  }

  absl::Status Expect(char c) {
    SkipSpace();
    if (in_.done() || in_.peek() != c) {
      return in_.Error(absl::StrCat("expected '", std::string(1, c), "'"));
    }
    in_.next();
    return absl::OkStatus();
  }

  absl::Status ReadValue(Datum* out, int depth) {
    if (depth > kMaxDepth) return in_.Error("nested too deeply");
    SkipSpace();
    if (in_.done()) return in_.Error("unexpected end of input");
    out->line = in_.line();
    const char c = in_.peek();
    if (c == '{') return ReadObject(out, depth);
    if (c == '[') return ReadArray(out, depth);
    if (c == '"') {
      in_.next();
      out->kind = Datum::Kind::kString;
      return ReadStringBody(in_, &out->text);
    }
    std::string token;
    while (!in_.done() && (std::isalnum(static_cast<unsigned char>(in_.peek())) ||
                           in_.peek() == '-' || in_.peek() == '+' || in_.peek() == '.')) {
      token.push_back(in_.next());
    }
    if (token == "null") return absl::OkStatus();
    if (token == "true" || token == "false") {
      out->kind = Datum::Kind::kBool;
      out->boolean = token == "true";
      return absl::OkStatus();
    }
    if (token.empty()) return in_.Error(absl::StrCat("unexpected '", std::string(1, c), "'"));
    return ParseNumber(in_, token, out);
  }

  absl::Status ReadArray(Datum* out, int depth) {
    in_.next();
    out->kind = Datum::Kind::kList;
    SkipSpace();
    if (in_.peek() == ']') {
      in_.next();
      return absl::OkStatus();
    }
    while (true) {
      Datum item;
      absl::Status read = ReadValue(&item, depth + 1);
      if (!read.ok()) return read;
      out->items.push_back(std::move(item));
      SkipSpace();
      if (in_.peek() == ',') {
        in_.next();
        continue;
      }
      return Expect(']');
    }
  }

  absl::Status ReadObject(Datum* out, int depth) {
    in_.next();
    out->kind = Datum::Kind::kMap;
    SkipSpace();
    if (in_.peek() == '}') {
      in_.next();
      return absl::OkStatus();
    }
    while (true) {
      SkipSpace();
      Datum key;
      key.line = in_.line();
      if (in_.peek() != '"') return in_.Error("expected a string key");
      in_.next();
      key.kind = Datum::Kind::kString;
      absl::Status read = ReadStringBody(in_, &key.text);
      if (!read.ok()) return read;
      read = Expect(':');
      if (!read.ok()) return read;
      Datum value;
      read = ReadValue(&value, depth + 1);
      if (!read.ok()) return read;
      out->entries.emplace_back(std::move(key), std::move(value));
      SkipSpace();
      if (in_.peek() == ',') {
        in_.next();
        continue;
      }
      return Expect('}');
    }
  }

  Cursor in_;
};

}  // namespace

const Datum* Datum::Find(absl::string_view name) const {
  for (const auto& [key, value] : entries) {
    if ((key.kind == Kind::kKeyword || key.kind == Kind::kString) && key.text == name) {
      return &value;
    }
  }
  return nullptr;
}

absl::StatusOr<std::vector<Datum>> ReadEdn(absl::string_view text) {
  return EdnReader(text).ReadAll();
}

absl::StatusOr<std::vector<Datum>> ReadJson(absl::string_view text) {
  return JsonReader(text).ReadAll();
}

}  // namespace dsim::check::internal
