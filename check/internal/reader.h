// Readers for the two history formats: a small EDN reader and a small JSON reader,
// both producing Datum trees. Only what histories use is kept faithfully (nil,
// booleans, integers, strings, keywords, vectors, lists, sets, maps); floats, symbols
// and characters are read so that a field holding one can be skipped.
#ifndef DSIM_CHECK_INTERNAL_READER_H_
#define DSIM_CHECK_INTERNAL_READER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dsim::check::internal {

struct Datum {
  enum class Kind { kNil, kBool, kInt, kFloat, kString, kKeyword, kSymbol, kList, kMap };
  Kind kind = Kind::kNil;
  bool boolean = false;
  int64_t integer = 0;
  std::string text;                               // String, keyword (no ':'), symbol.
  std::vector<Datum> items;                       // Vectors, lists, sets.
  std::vector<std::pair<Datum, Datum>> entries;   // Maps.
  int line = 0;                                   // 1-based, where it began.

  // The value of a map entry whose key is keyword/string `name`, or null.
  const Datum* Find(absl::string_view name) const;
};

// Every top-level form of an EDN text, in order. Tags (#foo/bar x) are dropped;
// #_ discards the next form; ';' starts a comment; commas are whitespace.
absl::StatusOr<std::vector<Datum>> ReadEdn(absl::string_view text);

// Every top-level JSON value of a text (one document, or one per line), in order.
absl::StatusOr<std::vector<Datum>> ReadJson(absl::string_view text);

}  // namespace dsim::check::internal

#endif  // DSIM_CHECK_INTERNAL_READER_H_
