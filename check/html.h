// A picture of a linearizability check: one self-contained HTML file (inline CSS and
// SVG, a few lines of script, nothing fetched) in the spirit of Porcupine's
// visualizer.
//
// Example:
//
//   dsim::check::CheckResult result = dsim::check::CheckLinearizability(history, model);
//   absl::Status written = dsim::check::WriteHtml(result, "/tmp/history.html");
//
// What it shows: the verdict and a table of partitions (keys); then, for each
// partition that is not linearizable, its smallest failing prefix drawn as a timeline,
// one row per client (process), each operation a bar from its invocation to its
// completion (to the right edge when the outcome is unknown). Bars are coloured:
//   green   in the longest linearization found for the prefix, numbered in its order,
//           with a line through a possible linearization point of each;
//   red     the operation whose completion makes the prefix fail;
//   orange  completed operations that could not be added to that linearization;
//   grey    unknown outcomes left out (they may never have taken effect), and
//           operations that failed.
// Hovering a bar shows the operation, its virtual times, and the model's state after
// it in the linearization. Below the timeline: the linearization as a table.
// Horizontal position is the order of events (the history's real-time order), not
// their times, so that instants do not crowd; the times label the events.
#ifndef DSIM_CHECK_HTML_H_
#define DSIM_CHECK_HTML_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "check/linearizability.h"

namespace dsim::check {

struct HtmlOptions {
  std::string title = "linearizability check";
  // At most this many operations of a failing prefix are drawn (its last ones).
  size_t max_operations_drawn = 400;
  // At most this many failing partitions are drawn (the rest are listed).
  size_t max_partitions_drawn = 10;
};

std::string RenderHtml(const CheckResult& result, const HtmlOptions& options = {});
absl::Status WriteHtml(const CheckResult& result, const std::string& path,
                       const HtmlOptions& options = {});

}  // namespace dsim::check

#endif  // DSIM_CHECK_HTML_H_
