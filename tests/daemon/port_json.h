// The port.add body of test port `i` (1..9): its VM UUID, MAC, /32 and
// representor all derived from `i`; shared by the daemon parts' tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace nicoffload::daemon::test_support {

inline nlohmann::json portJson(int i) {
  return {{"vm", "00000000-0000-4000-8000-00000000000" + std::to_string(i)},
          {"nic", 0},
          {"mac", "52:54:00:00:00:0" + std::to_string(i)},
          {"addresses", {"10.0." + std::to_string(i) + ".1/32"}},
          {"representor", "rep" + std::to_string(i)}};
}

}  // namespace nicoffload::daemon::test_support
