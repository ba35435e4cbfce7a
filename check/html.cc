#include "check/html.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dsim::check {
namespace {

constexpr int kLeft = 110;        // Room for the row labels.
constexpr int kColumn = 46;       // Pixels per event.
constexpr int kRow = 30;          // Pixels per lane.
constexpr int kBar = 20;          // Bar height.
constexpr int kTop = 40;          // Room for the numbers above the bars and the axis.

std::string Escape(absl::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Seconds(std::optional<int64_t> ns) {
  return ns.has_value() ? absl::StrFormat("%.6fs", static_cast<double>(*ns) / 1e9) : "?";
}

std::string OpLabel(const Operation& op) {
  Operation unkeyed = op;
  unkeyed.key.reset();
  return unkeyed.Describe();
}

const char* kStyle = R"(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 17px; margin-top: 32px; }
.verdict-bad { color: #b00020; } .verdict-good { color: #1b7f3b; } .verdict-unknown { color: #8a6d00; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; font-size: 13px; }
th { background: #f4f4f4; }
.scroll { overflow-x: auto; border: 1px solid #ddd; padding: 4px; }
.bar { stroke: #555; stroke-width: 1; cursor: default; }
.bar:hover, .bar.hl { stroke: #000; stroke-width: 3; }
.lin { fill: #bfe5c4; } .failing { fill: #f28b8b; stroke: #b00020; stroke-width: 2; }
.left { fill: #ffd59a; } .skipped { fill: #e4e4e4; } .failed { fill: #f4f4f4; stroke-dasharray: 3 2; }
.open { stroke-dasharray: 5 3; }
.label { font: 11px ui-monospace, monospace; pointer-events: none; }
.order { font: bold 10px system-ui, sans-serif; fill: #1b5e20; pointer-events: none; }
.lp { fill: #1b5e20; } .lpline { stroke: #1b5e20; stroke-width: 1.5; fill: none; opacity: .6; }
.axis { font: 10px system-ui, sans-serif; fill: #666; }
.legend span { display: inline-block; padding: 0 8px; margin-right: 6px; border: 1px solid #888; }
tr.hl td { background: #fff3c4; }
)";

// Highlights a bar and its table row together.
const char* kScript = R"(
document.querySelectorAll('[data-op]').forEach(function (el) {
  el.addEventListener('mouseenter', function () {
    document.querySelectorAll('[data-op="' + el.dataset.op + '"]').forEach(function (x) { x.classList.add('hl'); });
  });
  el.addEventListener('mouseleave', function () {
    document.querySelectorAll('[data-op="' + el.dataset.op + '"]').forEach(function (x) { x.classList.remove('hl'); });
  });
});
)";

struct Drawn {
  const Operation* op;
  double x0;
  double x1;
  bool open;  // No completion by the cut.
  int lane;
};

// The timeline of one failing partition's smallest failing prefix.
std::string Timeline(const CheckResult& result, const PartitionResult& partition,
                     const HtmlOptions& options, std::string* omitted_note) {
  const std::vector<Operation>& ops = result.operations;
  const int64_t cut = ops[*partition.failing_op].return_position;
  std::vector<const Operation*> chosen;
  for (size_t id : partition.operations) {
    if (ops[id].call_position <= cut) chosen.push_back(&ops[id]);
  }
  if (chosen.size() > options.max_operations_drawn) {
    const size_t omitted = chosen.size() - options.max_operations_drawn;
    *omitted_note = absl::StrCat(omitted, " earlier operations of this prefix are not drawn.");
    chosen.erase(chosen.begin(), chosen.begin() + static_cast<std::ptrdiff_t>(omitted));
  }
  // Columns: the drawn events, in history order.
  std::vector<int64_t> positions;
  for (const Operation* op : chosen) {
    positions.push_back(op->call_position);
    if (op->return_position <= cut) positions.push_back(op->return_position);
  }
  std::sort(positions.begin(), positions.end());
  auto column = [&](int64_t position) {
    return static_cast<double>(std::lower_bound(positions.begin(), positions.end(), position) -
                               positions.begin());
  };
  const double right = static_cast<double>(positions.size()) + 0.5;
  auto x = [](double col) { return kLeft + col * kColumn; };

  // Rows: one per process, split into lanes where its bars overlap (an operation with
  // unknown outcome stays open while the process goes on).
  std::map<int64_t, std::vector<double>> lane_ends;  // Process -> each lane's right end.
  std::vector<Drawn> bars;
  for (const Operation* op : chosen) {
    Drawn bar{op, column(op->call_position) + 0.1,
              op->return_position <= cut ? column(op->return_position) + 0.9 : right,
              op->return_position > cut, 0};
    std::vector<double>& ends = lane_ends[op->process];
    size_t lane = 0;
    while (lane < ends.size() && ends[lane] > bar.x0) ++lane;
    if (lane == ends.size()) ends.push_back(0);
    ends[lane] = bar.x1;
    bar.lane = static_cast<int>(lane);
    bars.push_back(bar);
  }
  std::map<int64_t, int> first_row;
  int rows = 0;
  for (const auto& [process, ends] : lane_ends) {
    first_row[process] = rows;
    rows += static_cast<int>(ends.size());
  }

  absl::flat_hash_map<size_t, size_t> order;  // Op id -> place in the linearization.
  for (size_t i = 0; i < partition.linearization.size(); ++i) order[partition.linearization[i]] = i;

  const int width = static_cast<int>(x(right + 1));
  const int height = kTop + rows * kRow + 10;
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\">\n", width, height);
  // Row labels and guide lines.
  for (const auto& [process, row] : first_row) {
    const int y = kTop + row * kRow;
    absl::StrAppendFormat(&svg,
                          "<text x=\"6\" y=\"%d\" class=\"axis\" style=\"font-size:12px\">process "
                          "%d</text><line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" "
                          "stroke=\"#eee\"/>\n",
                          y + kBar / 2 + 4, process, kLeft, width, y - 4, y - 4);
  }
  // Event times along the top, every few columns.
  std::vector<std::optional<int64_t>> times(positions.size());
  for (const Operation* op : chosen) {
    times[static_cast<size_t>(column(op->call_position))] = op->call_time_ns;
    if (op->return_position <= cut) {
      times[static_cast<size_t>(column(op->return_position))] = op->return_time_ns;
    }
  }
  for (size_t c = 0; c < times.size(); c += 3) {
    if (!times[c].has_value()) continue;
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"12\" class=\"axis\">%.3fs</text>\n",
                          x(static_cast<double>(c)), static_cast<double>(*times[c]) / 1e9);
  }
  // Bars.
  std::vector<std::pair<size_t, const Drawn*>> linearized;
  for (const Drawn& bar : bars) {
    const Operation& op = *bar.op;
    const int y = kTop + (first_row[op.process] + bar.lane) * kRow;
    auto placed = order.find(op.id);
    std::string cls = "bar ";
    std::string role;
    if (op.id == *partition.failing_op) {
      cls += "failing";
      role = op.outcome == Outcome::kFail
                 ? "its failure leaves the earlier operations with no linearization"
                 : "cannot be linearized: the prefix ending with its completion fails";
    } else if (placed != order.end()) {
      cls += "lin";
      role = absl::StrCat("linearized #", placed->second + 1,
                          placed->second < partition.states.size()
                              ? absl::StrCat(", state after: ", partition.states[placed->second])
                              : "");
      linearized.push_back({placed->second, &bar});
    } else if (op.outcome == Outcome::kFail && !bar.open) {
      cls += "failed";
      role = "failed: did not take effect";
    } else if (bar.open || op.outcome == Outcome::kInfo) {
      cls += "skipped";
      role = "outcome unknown here; left out (it may never have taken effect)";
    } else {
      cls += "left";
      role = "could not be added to the longest linearization";
    }
    if (bar.open) cls += " open";
    const std::string tip = absl::StrCat(
        "process ", op.process, ": ", OpLabel(op), "\ninvoked ", Seconds(op.call_time_ns),
        bar.open ? ", not completed by the end of the prefix"
                 : absl::StrCat(", completed ", Seconds(op.return_time_ns)),
        "\n", role);
    const double x0 = x(bar.x0);
    const double w = std::max(4.0, x(bar.x1) - x0);
    absl::StrAppendFormat(&svg,
                          "<rect class=\"%s\" data-op=\"%d\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" "
                          "height=\"%d\" rx=\"3\"><title>%s</title></rect>\n",
                          cls, op.id, x0, y, w, kBar, Escape(tip));
    std::string label = OpLabel(op);
    const size_t fits = static_cast<size_t>(std::max(0.0, (w - 6) / 6.6));
    if (label.size() > fits) label = fits > 1 ? label.substr(0, fits - 1) + "…" : "";
    if (!label.empty()) {
      absl::StrAppendFormat(&svg, "<text class=\"label\" x=\"%.1f\" y=\"%d\">%s</text>\n", x0 + 4,
                            y + kBar / 2 + 4, Escape(label));
    }
    if (placed != order.end()) {
      absl::StrAppendFormat(&svg, "<text class=\"order\" x=\"%.1f\" y=\"%d\">%d</text>\n", x0 + 1,
                            y - 2, placed->second + 1);
    }
  }
  // One possible linearization point per linearized operation, in order: as early as
  // its invocation and the previous point allow, within its bar.
  std::sort(linearized.begin(), linearized.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string path;
  double previous = 0;
  for (const auto& [index, bar] : linearized) {
    const double lo = x(bar->x0) + 3;
    const double hi = x(bar->x1) - 3;
    const double px = std::min(hi, std::max(lo, previous + 4));
    previous = px;
    const int py = kTop + (first_row[bar->op->process] + bar->lane) * kRow + kBar / 2;
    absl::StrAppendFormat(&path, "%s%.1f,%d", path.empty() ? "M" : " L", px, py);
    absl::StrAppendFormat(&svg, "<circle class=\"lp\" cx=\"%.1f\" cy=\"%d\" r=\"3\"/>\n", px, py);
  }
  if (!path.empty()) absl::StrAppend(&svg, "<path class=\"lpline\" d=\"", path, "\"/>\n");
  svg += "</svg>\n";
  return svg;
}

std::string LinearizationTable(const CheckResult& result, const PartitionResult& partition) {
  std::string html = "<table><tr><th>#</th><th>process</th><th>operation</th><th>invoked</th>"
                     "<th>completed</th><th>state after</th></tr>\n";
  auto row = [&](const std::string& number, const Operation& op, const std::string& state,
                 const char* style) {
    absl::StrAppendFormat(
        &html, "<tr data-op=\"%d\"%s><td>%s</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
        op.id, style, number, op.process, Escape(OpLabel(op)), Seconds(op.call_time_ns),
        op.outcome == Outcome::kInfo ? "unknown" : Seconds(op.return_time_ns), Escape(state));
  };
  constexpr size_t kMaxRows = 300;
  const size_t first =
      partition.linearization.size() > kMaxRows ? partition.linearization.size() - kMaxRows : 0;
  if (first > 0) {
    absl::StrAppend(&html, "<tr><td colspan=\"6\">(the first ", first,
                    " operations of the linearization are not listed)</td></tr>\n");
  }
  for (size_t i = first; i < partition.linearization.size(); ++i) {
    row(absl::StrCat(i + 1), result.operations[partition.linearization[i]],
        i < partition.states.size() ? partition.states[i] : "", "");
  }
  row("✗", result.operations[*partition.failing_op], "cannot follow", " style=\"color:#b00020\"");
  html += "</table>\n";
  return html;
}

const char* VerdictClass(Verdict verdict) {
  switch (verdict) {
    case Verdict::kLinearizable: return "verdict-good";
    case Verdict::kNotLinearizable: return "verdict-bad";
    case Verdict::kUnknown: return "verdict-unknown";
  }
  return "";
}

std::string PartitionTitle(const PartitionResult& partition) {
  return partition.key.has_value() ? absl::StrCat("key ", partition.key->Short()) : "history";
}

}  // namespace

std::string RenderHtml(const CheckResult& result, const HtmlOptions& options) {
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>", Escape(options.title),
      "</title>\n<style>", kStyle, "</style></head><body>\n<h1>", Escape(options.title),
      ": <span class=\"", VerdictClass(result.verdict), "\">", VerdictName(result.verdict),
      "</span></h1>\n");
  if (!result.error.ok()) {
    absl::StrAppend(&html, "<p>The history could not be checked: ",
                    Escape(result.error.message()), "</p></body></html>\n");
    return html;
  }
  absl::StrAppendFormat(&html, "<p>Model <b>%s</b>, %d operations, %d partition%s, checked in %s.</p>\n",
                        Escape(result.model), result.operations.size(), result.partitions.size(),
                        result.partitions.size() == 1 ? "" : "s",
                        absl::FormatDuration(result.elapsed));
  // The partitions, failing ones first.
  std::vector<const PartitionResult*> sorted;
  for (const PartitionResult& partition : result.partitions) sorted.push_back(&partition);
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return a->verdict == Verdict::kNotLinearizable && b->verdict != Verdict::kNotLinearizable;
  });
  html += "<table><tr><th>partition</th><th>verdict</th><th>operations</th><th>search steps</th></tr>\n";
  for (const PartitionResult* partition : sorted) {
    absl::StrAppendFormat(&html, "<tr><td>%s</td><td class=\"%s\">%s</td><td>%d</td><td>%d</td></tr>\n",
                          Escape(PartitionTitle(*partition)), VerdictClass(partition->verdict),
                          VerdictName(partition->verdict), partition->operations.size(),
                          partition->steps);
  }
  html += "</table>\n";
  html += "<p class=\"legend\"><span style=\"background:#bfe5c4\">linearized (numbered in order)</span>"
          "<span style=\"background:#f28b8b\">cannot be linearized</span>"
          "<span style=\"background:#ffd59a\">could not be added</span>"
          "<span style=\"background:#e4e4e4\">unknown outcome, left out</span>"
          "<span style=\"background:#f4f4f4\">failed</span></p>\n";
  size_t drawn = 0;
  for (const PartitionResult* partition : sorted) {
    if (partition->verdict != Verdict::kNotLinearizable) break;
    if (!partition->failing_op.has_value()) continue;
    if (drawn++ == options.max_partitions_drawn) {
      html += "<p>More partitions failed; they are listed in the table above.</p>\n";
      break;
    }
    const Operation& failing = result.operations[*partition->failing_op];
    std::string omitted;
    const std::string svg = Timeline(result, *partition, options, &omitted);
    absl::StrAppendFormat(
        &html,
        "<h2>%s: not linearizable</h2>\n<p>The smallest failing prefix has %d operations. It "
        "ends when process %d's <code>%s</code> completed (%s): no order of the operations "
        "before it, consistent with real time and the model, explains it. A longest "
        "linearization of the prefix has %d operations. %s</p>\n<div class=\"scroll\">%s</div>\n",
        Escape(PartitionTitle(*partition)), partition->prefix.size(), failing.process,
        Escape(OpLabel(failing)), Seconds(failing.return_time_ns), partition->linearization.size(),
        Escape(omitted), svg);
    absl::StrAppend(&html, "<h3>The longest linearization, then the operation that cannot follow</h3>\n",
                    LinearizationTable(result, *partition));
  }
  absl::StrAppend(&html, "<script>", kScript, "</script>\n</body></html>\n");
  return html;
}

absl::Status WriteHtml(const CheckResult& result, const std::string& path,
                       const HtmlOptions& options) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << RenderHtml(result, options);
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace dsim::check
