// websock-hub's flags for resumable streams: history bounds and the ack window, each also
// from a HUB_STREAM_* variable (a flag wins), taken out of the argument list before the
// hub's own flags are read (as channelstream's are).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hub/streams/module.hpp"

namespace hub::streams {

/// The lines of `websock-hub --help` about these flags.
std::string_view flags_usage();

/// Read HUB_STREAM_* through `getenv`, then take every --stream-... flag (`--flag N` or
/// `--flag=N`) out of `args` into `options`. An error text (never the value) when one is
/// bad or lacks its value.
std::optional<std::string> take_flags(std::vector<std::string>& args, StreamsOptions& options,
                                      const std::function<const char*(const char*)>& getenv);

}  // namespace hub::streams
