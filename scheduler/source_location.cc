#include "scheduler/source_location.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace dsim {

std::string SourceLocation::ToString() const {
  if (!known()) return "?";
  if (line_ == kDescribed) return file_;
  const char* slash = std::strrchr(file_, '/');
  return absl::StrCat(slash ? slash + 1 : file_, ":", line_);
}

}  // namespace dsim
