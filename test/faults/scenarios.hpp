// The scenarios of the fault suite: each drives the server under test through one kind of
// exchange with RawClient and says whether it went through completely. Under an injected
// fault a scenario may end early (the server cut the connection); without one it must
// complete, which the suite checks first.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "test/faults/harness.hpp"
#include "test/faults/raw_client.hpp"

namespace faults {

struct Scenario {
    std::string name;
    std::function<bool(ServerUnderTest& server)> run;
    bool tls = false;         ///< needs a wss server
    bool async_http = false;  ///< needs on_http_request_async
    bool stops_server = false;  ///< the scenario itself stops the server
};

/// Every scenario the issue names, in one list.
const std::vector<Scenario>& all_scenarios();

/// A new client's full exchange (upgrade, echo, close): the server still serves.
bool serves_a_new_client(ServerUnderTest& server);

}  // namespace faults
