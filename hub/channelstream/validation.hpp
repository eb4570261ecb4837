// Request bodies of the channelstream API, read as channelstream 0.7.1's marshmallow 2 schemas
// read them: the same defaults for missing fields and the same error messages
// ({"field": ["Missing data for required field."]}, answered with 422). Each load_* gives
// the body with every default filled in, or the errors. Pure functions of their inputs
// (defaults that need a fresh id or the time take them from the caller), any thread; the
// ones that look connections or users up read the State under the caller's lock.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "hub/channelstream/state.hpp"

namespace hub::channelstream {

struct Loaded {
    Json data;
    Json errors = Json::object();
    bool ok() const { return errors.empty(); }
};

/// Fresh values a default may need.
struct Defaults {
    Micros now = 0;                                  ///< for missing timestamps / edited
    std::function<std::string()> new_uuid;           ///< for a missing conn_id or message uuid
};

/// A conn_id as channelstream's UUID field reads it, then looked up. A non-UUID id that a
/// 2015-style client connected with is found as it is.
std::optional<std::string> resolve_connection(const Json& value, const State& state, std::string* error);

/// POST /connect. `user` is accepted for `username` (the 2015 API); a 2015 body may use any
/// string as conn_id.
Loaded load_connect(const Json& body, const Defaults& defaults);
/// POST /subscribe and /unsubscribe; conn_id from the body, else `query_conn_id`.
Loaded load_subscribe(const Json& body, const std::optional<std::string>& query_conn_id, const State& state);
/// POST /user_state.
Loaded load_user_state(const Json& body, const State& state);
/// POST /user_status (2015): {"user": NAME, "status": VALUE} as a user_state of {"status": VALUE}.
Loaded load_user_status(const Json& body, const State& state);
/// POST /message: a list; messages naming neither channel nor pm_users are dropped.
Loaded load_messages(const Json& body, const Defaults& defaults);
/// PATCH /message: a list of edits.
Loaded load_edits(const Json& body, const Defaults& defaults);
/// DELETE /message: a list of deletions.
Loaded load_deletes(const Json& body);
/// POST /channel_config: {channel: config}; each config gets every key (defaults filled).
Loaded load_channel_configs(const Json& body);
/// One channel config (ChannelConfigSchema).
Loaded load_channel_config(const Json& body);
/// POST /info with a body: {"info": {...}} (or the 2015 {"channels": [...]}).
Loaded load_info(const Json& body);
/// GET|POST /disconnect: the conn_id, a UUID (canonical) or a known 2015 id; unknown ones pass.
Loaded load_disconnect(const Json& conn_id, const State& state);

}  // namespace hub::channelstream
