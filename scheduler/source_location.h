// SourceLocation: where a blocking call was made, for deadlock and hang reports.
//
// Blocking calls take a defaulted `SourceLocation where = SourceLocation::Current()`
// parameter, so reports can say `task "client-2" blocked in CondVar::Wait at kv.cc:88`
// without the caller writing anything:
//
//   void Wait(Mutex* mu, SourceLocation where = SourceLocation::Current());
#ifndef DSIM_SCHEDULER_SOURCE_LOCATION_H_
#define DSIM_SCHEDULER_SOURCE_LOCATION_H_

#include <string>

namespace dsim {

class SourceLocation {
 public:
  constexpr SourceLocation() = default;

  // Captures the caller's file and line when used as a default argument.
  static constexpr SourceLocation Current(const char* file = __builtin_FILE(),
                                          int line = __builtin_LINE()) {
    return SourceLocation(file, line);
  }

  // A location known only as a description ("Queue::Pop() in queue_test+0x1c2"), for
  // calls that reach dsim through interposed libc functions. `text` must outlive every
  // report that shows it.
  static constexpr SourceLocation Described(const char* text) {
    return SourceLocation(text, kDescribed);
  }

  constexpr const char* file_name() const { return file_; }
  constexpr int line() const { return line_ == kDescribed ? 0 : line_; }
  bool known() const { return line_ > 0 || line_ == kDescribed; }

  // "kv.cc:88": the file's base name and the line, the description, or "?" when unknown.
  std::string ToString() const;

 private:
  static constexpr int kDescribed = -1;
  constexpr SourceLocation(const char* file, int line) : file_(file), line_(line) {}

  const char* file_ = "";
  int line_ = 0;
};

}  // namespace dsim

#endif  // DSIM_SCHEDULER_SOURCE_LOCATION_H_
