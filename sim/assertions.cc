#include "sim/assertions.h"

#include "sim/buggify.h"
#include "sim/simulation.h"

namespace dsim::internal {

void AssertionReached(const Site& site, bool condition) {
  Simulation* sim = Simulation::Current();
  if (sim == nullptr) return;
  sim->coverage().OnAssertion(site, condition);
}

bool BuggifyReached(const Site& site) {
  Simulation* sim = Simulation::Current();
  if (sim == nullptr) return false;
  return sim->coverage().Buggify(site);
}

}  // namespace dsim::internal
