// MiniJson: just enough of a JSON parser for tests to read back what dsim writes
// (Chrome trace files). Strict about structure, lax about number formats.
#ifndef DSIM_TESTS_INTERNAL_MINI_JSON_H_
#define DSIM_TESTS_INTERNAL_MINI_JSON_H_

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dsim::testing {

struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string text;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  const Json* Find(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? nullptr : &it->second;
  }
  std::string Str(const std::string& key) const {
    const Json* v = Find(key);
    return v != nullptr && v->type == Type::kString ? v->text : "";
  }
  double Num(const std::string& key) const {
    const Json* v = Find(key);
    return v != nullptr && v->type == Type::kNumber ? v->number : -1;
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : s_(text) {}

  // The value, or nullopt if `text` is not exactly one JSON value.
  std::optional<Json> Parse() {
    Json value;
    if (!Value(&value)) return std::nullopt;
    Space();
    if (pos_ != s_.size()) return std::nullopt;
    return value;
  }

 private:
  void Space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' ||
                                s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool Eat(char c) {
    Space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool Literal(const char* word) {
    const std::string w(word);
    if (s_.compare(pos_, w.size(), w) != 0) return false;
    pos_ += w.size();
    return true;
  }
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\') {
        if (pos_ >= s_.size()) return false;
        char e = s_[pos_++];
        switch (e) {
          case 'n': c = '\n'; break;
          case 't': c = '\t'; break;
          case 'r': c = '\r'; break;
          case 'u':
            if (pos_ + 4 > s_.size()) return false;
            c = static_cast<char>(std::strtol(s_.substr(pos_, 4).c_str(), nullptr, 16));
            pos_ += 4;
            break;
          default: c = e;
        }
      } else if (static_cast<unsigned char>(c) < 0x20) {
        return false;  // Raw control characters are not valid JSON.
      }
      out->push_back(c);
    }
    return Eat('"');
  }
  bool Value(Json* v) {
    Space();
    if (pos_ >= s_.size()) return false;
    const char c = s_[pos_];
    if (c == '{') return Object(v);
    if (c == '[') return Array(v);
    if (c == '"') {
      v->type = Json::Type::kString;
      return String(&v->text);
    }
    if (Literal("true") || Literal("false")) {
      v->type = Json::Type::kBool;
      v->boolean = s_[pos_ - 1] == 'e' && s_[pos_ - 2] == 'u';
      return true;
    }
    if (Literal("null")) return true;
    const char* start = s_.c_str() + pos_;
    char* end = nullptr;
    v->number = std::strtod(start, &end);
    if (end == start) return false;
    v->type = Json::Type::kNumber;
    pos_ += static_cast<size_t>(end - start);
    return true;
  }
  bool Array(Json* v) {
    v->type = Json::Type::kArray;
    Eat('[');
    if (Eat(']')) return true;
    do {
      v->items.emplace_back();
      if (!Value(&v->items.back())) return false;
    } while (Eat(','));
    return Eat(']');
  }
  bool Object(Json* v) {
    v->type = Json::Type::kObject;
    Eat('{');
    if (Eat('}')) return true;
    do {
      std::string key;
      if (!String(&key) || !Eat(':')) return false;
      if (v->fields.count(key)) return false;  // Duplicate keys: a writer bug.
      if (!Value(&v->fields[key])) return false;
    } while (Eat(','));
    return Eat('}');
  }

  const std::string& s_;
  size_t pos_ = 0;
};

}  // namespace dsim::testing

#endif  // DSIM_TESTS_INTERNAL_MINI_JSON_H_
