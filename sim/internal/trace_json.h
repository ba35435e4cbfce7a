// Chrome Trace Event JSON export of a Trace (see Trace::WriteChromeJson).
#ifndef DSIM_SIM_INTERNAL_TRACE_JSON_H_
#define DSIM_SIM_INTERNAL_TRACE_JSON_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/strings/string_view.h"

namespace dsim {
class Trace;
struct ChromeJsonOptions;
}  // namespace dsim

namespace dsim::internal {

// Thread ids at and above this are a host's own track (annotations made outside the
// host's tasks, e.g. a delivery in a timer callback): tid = kHostTrackTid + group. The
// "loop" track (timers, clock jumps) is group 0's host track. Task ids stay below it.
inline constexpr uint64_t kHostTrackTid = 2000000000;

void WriteChromeTraceJson(const Trace& trace, const ChromeJsonOptions& options,
                          std::ostream& out);

// `text` as a JSON string literal, quotes included.
std::string JsonString(absl::string_view text);

}  // namespace dsim::internal

#endif  // DSIM_SIM_INTERNAL_TRACE_JSON_H_
