// The one header a program includes to use websock.
#pragma once

#include "websock/client.hpp"
#include "websock/frame_stream.hpp"
#include "websock/handshake_policy.hpp"
#include "websock/http.hpp"
#include "websock/options.hpp"
#include "websock/server.hpp"
#include "websock/types.hpp"
#include "websock/version.hpp"
