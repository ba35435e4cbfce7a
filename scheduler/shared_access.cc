#include "scheduler/shared_access.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace dsim::internal {

void SharedAccessPoint(Scheduler& scheduler, const char* what, SourceLocation where) {
  if (!scheduler.InTask()) return;  // Timer callbacks and the main fiber cannot switch.
  if (scheduler.has_listeners()) {
    // Built only when someone listens: the string costs more than the switch.
    const std::string detail = absl::StrCat(what, " at ", where.ToString());
    scheduler.Annotate(Annotation{"sched.access", detail, scheduler.CurrentGroup()});
  }
  scheduler.SchedulingPoint();
}

}  // namespace dsim::internal
