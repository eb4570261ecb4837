#include "hub/channelstream/validation.hpp"

#include <cmath>

namespace hub::channelstream {

namespace {

// marshmallow 2's messages, word for word.
constexpr const char* kMissing = "Missing data for required field.";
constexpr const char* kNotNull = "Field may not be null.";
constexpr const char* kInvalidInput = "Invalid input type.";

std::string length_message(std::size_t min, std::size_t max) {
    return "Length must be between " + std::to_string(min) + " and " + std::to_string(max) + ".";
}

/// Reads the fields of one object, recording errors under their field names.
class Fields {
public:
    Fields(const Json& object, Json& errors) : object_(object), errors_(errors) {}

    const Json* raw(const char* key) const {
        auto found = object_.find(key);
        return found == object_.end() ? nullptr : &*found;
    }
    void error(const std::string& key, Json message) {
        Json& slot = errors_[key];
        if (!slot.is_array()) slot = Json::array();
        slot.push_back(std::move(message));
    }
    void nested_error(const std::string& key, Json errors) { errors_[key] = std::move(errors); }

    /// A string of min..max characters (code points, as Python counts them).
    bool string(const char* key, std::optional<std::string>& out, bool required, std::size_t min, std::size_t max,
                bool nullable = false) {
        const Json* value = raw(key);
        if (value == nullptr) {
            if (required) error(key, kMissing);
            return !required;
        }
        if (value->is_null()) {
            if (nullable) return true;
            error(key, kNotNull);
            return false;
        }
        if (!value->is_string()) {
            error(key, "Not a valid string.");
            return false;
        }
        std::string text = value->get<std::string>();
        const std::size_t length = code_points(text);
        if (length < min || length > max) {
            error(key, length_message(min, max));
            return false;
        }
        out = std::move(text);
        return true;
    }

    bool boolean(const char* key, bool& out) {
        const Json* value = raw(key);
        if (value == nullptr) return true;
        if (value->is_boolean()) {
            out = value->get<bool>();
            return true;
        }
        if (value->is_number()) {
            const double number = value->get<double>();
            if (number == 1 || number == 0) {
                out = number == 1;
                return true;
            }
        }
        if (value->is_string()) {
            const std::string& text = value->get_ref<const std::string&>();
            for (const char* yes : {"t", "T", "true", "True", "TRUE", "1"})
                if (text == yes) return (out = true), true;
            for (const char* no : {"f", "F", "false", "False", "FALSE", "0"})
                if (text == no) return (out = false), true;
        }
        error(key, value->is_null() ? kNotNull : "Not a valid boolean.");
        return false;
    }

    bool integer(const char* key, std::int64_t& out, std::int64_t min) {
        const Json* value = raw(key);
        if (value == nullptr) return true;
        std::optional<std::int64_t> number;
        if (value->is_number_integer()) number = value->get<std::int64_t>();
        else if (value->is_number_float() && std::isfinite(value->get<double>()) && std::fabs(value->get<double>()) < 9e15)
            number = static_cast<std::int64_t>(value->get<double>());
        else if (value->is_string()) {
            try {
                std::size_t used = 0;
                const std::string& text = value->get_ref<const std::string&>();
                const long long parsed = std::stoll(text, &used);
                if (used == text.size()) number = parsed;
            } catch (const std::exception&) {
            }
        }
        if (!number) {
            error(key, value->is_null() ? kNotNull : "Not a valid integer.");
            return false;
        }
        if (*number < min) {
            error(key, "Must be at least " + std::to_string(min) + ".");
            return false;
        }
        out = *number;
        return true;
    }

    /// A list of strings (each min..max long); `list_min` items at least.
    bool string_list(const char* key, Json& out, bool required, std::size_t item_max, std::size_t list_min = 0,
                     bool nullable = false) {
        const Json* value = raw(key);
        if (value == nullptr) {
            if (required) error(key, kMissing);
            return !required;
        }
        if (value->is_null() && nullable) {
            out = nullptr;
            return true;
        }
        if (!value->is_array()) {
            error(key, value->is_null() ? kNotNull : "Not a valid list.");
            return false;
        }
        for (const Json& item : *value) {
            if (!item.is_string()) {
                error(key, "Not a valid string.");
                return false;
            }
            const std::size_t length = code_points(item.get_ref<const std::string&>());
            if (length < 1 || length > item_max) {
                error(key, length_message(1, item_max));
                return false;
            }
        }
        if (value->size() < list_min) {
            error(key, "Shorter than minimum length " + std::to_string(list_min) + ".");
            return false;
        }
        out = *value;
        return true;
    }

    bool uuid(const char* key, std::optional<std::string>& out, bool required) {
        const Json* value = raw(key);
        if (value == nullptr) {
            if (required) error(key, kMissing);
            return !required;
        }
        std::optional<std::string> canonical;
        if (value->is_string()) canonical = canonical_uuid(value->get_ref<const std::string&>());
        if (!canonical) {
            error(key, value->is_null() ? kNotNull : "Not a valid UUID.");
            return false;
        }
        out = std::move(canonical);
        return true;
    }

    bool datetime(const char* key, std::optional<std::string>& out) {
        const Json* value = raw(key);
        if (value == nullptr) return true;
        std::optional<std::string> normalised;
        if (value->is_string()) normalised = normalize_iso_datetime(value->get_ref<const std::string&>());
        if (!normalised) {
            error(key, value->is_null() ? kNotNull : "Not a valid datetime.");
            return false;
        }
        out = std::move(normalised);
        return true;
    }

    /// Any JSON object (fields.Dict).
    bool dict(const char* key, std::optional<Json>& out) {
        const Json* value = raw(key);
        if (value == nullptr) return true;
        if (!value->is_object()) {
            error(key, value->is_null() ? kNotNull : "Not a valid mapping type.");
            return false;
        }
        out = *value;
        return true;
    }

    /// A user state: an object whose values are strings, numbers, booleans or null.
    bool user_state(const char* key, Json& out) {
        const Json* value = raw(key);
        if (value == nullptr) return true;
        if (!value->is_object()) {
            error(key, value->is_null() ? kNotNull : "Not a valid mapping type.");
            return false;
        }
        Json item_errors = Json::object();
        for (const auto& [name, item] : value->items()) {
            if (!(item.is_string() || item.is_number() || item.is_boolean() || item.is_null()))
                item_errors[name]["value"] = {"Value is not type of string, integer, boolean or float."};
        }
        if (!item_errors.empty()) {
            nested_error(key, std::move(item_errors));
            return false;
        }
        out = *value;
        return true;
    }

    static std::size_t code_points(const std::string& text) {
        std::size_t count = 0;
        for (unsigned char c : text)
            if ((c & 0xC0) != 0x80) ++count;
        return count;
    }

private:
    const Json& object_;
    Json& errors_;
};

/// {"_schema": ["Invalid input type."]}: what marshmallow says when the body is not an object.
Json invalid_input() { return {{"_schema", {kInvalidInput}}}; }

/// InfoResolutionSchema.
Loaded load_info_resolution(const Json& info) {
    Loaded out;
    if (!info.is_object()) {
        out.errors = invalid_input();
        return out;
    }
    Fields f(info, out.errors);
    bool include_history = true, include_users = true, include_connections = false, return_public_state = false;
    Json channels, exclude_channels = Json::array();
    f.boolean("include_history", include_history);
    f.boolean("include_users", include_users);
    f.boolean("include_connections", include_connections);
    f.boolean("return_public_state", return_public_state);
    const bool has_channels = f.raw("channels") != nullptr;
    f.string_list("channels", channels, false, 256);
    f.string_list("exclude_channels", exclude_channels, false, 256);
    out.data = {{"include_history", include_history},
                {"include_users", include_users},
                {"include_connections", include_connections},
                {"return_public_state", return_public_state},
                {"exclude_channels", exclude_channels}};
    if (has_channels && channels.is_array()) out.data["channels"] = channels;
    return out;
}

/// {channel: config} (BackportedDict of Nested(ChannelConfigSchema)).
bool channel_configs(Fields& f, const char* key, Json& out) {
    const Json* value = f.raw(key);
    if (value == nullptr) return true;
    if (!value->is_object()) {
        f.error(key, "Not a valid mapping type.");
        return false;
    }
    Json errors = Json::object();
    Json loaded = Json::object();
    for (const auto& [name, config] : value->items()) {
        Loaded one = load_channel_config(config);
        if (!one.ok()) errors[name]["value"] = one.errors;
        else loaded[name] = one.data;
    }
    if (!errors.empty()) {
        f.nested_error(key, std::move(errors));
        return false;
    }
    out = std::move(loaded);
    return true;
}

/// The `info` field of connect/subscribe (Nested, missing -> {}).
void info_field(Fields& f, Json& errors, Json& out) {
    const Json* value = f.raw("info");
    if (value == nullptr) {
        out = load_info_resolution(Json::object()).data;
        return;
    }
    Loaded info = load_info_resolution(*value);
    if (!info.ok()) errors["info"] = info.errors;
    else out = info.data;
}

/// The delivery fields every message body has (PayloadDeliveryInfo).
void delivery_fields(Fields& f, Json& data) {
    Json pm_users = Json::array(), exclude_users = Json::array();
    std::optional<std::string> channel;
    bool no_history = false;
    f.string_list("pm_users", pm_users, false, 512);
    f.string_list("exclude_users", exclude_users, false, 512);
    f.string("channel", channel, false, 1, 256, true);
    f.boolean("no_history", no_history);
    data["pm_users"] = pm_users;
    data["exclude_users"] = exclude_users;
    data["channel"] = channel ? Json(*channel) : Json(nullptr);
    data["no_history"] = no_history;
}

/// Apply `one` to every item of a list body (many=True): errors keyed by index.
template <typename LoadOne>
Loaded load_many(const Json& body, LoadOne load_one) {
    Loaded out;
    if (!body.is_array()) {
        out.errors = invalid_input();
        return out;
    }
    out.data = Json::array();
    for (std::size_t i = 0; i < body.size(); ++i) {
        Loaded one;
        if (body[i].is_object()) one = load_one(body[i]);  // load_one sees objects only
        else one.errors = invalid_input();
        if (!one.ok()) out.errors[std::to_string(i)] = one.errors;
        else out.data.push_back(std::move(one.data));
    }
    return out;
}

}  // namespace

std::optional<std::string> resolve_connection(const Json& value, const State& state, std::string* error) {
    if (value.is_string()) {
        const std::string& text = value.get_ref<const std::string&>();
        if (state.connection(text) != nullptr) return text;  // as given (2015 ids included)
        if (auto canonical = canonical_uuid(text)) {
            if (state.connection(*canonical) != nullptr) return canonical;
            if (error) *error = "Unknown connection";
            return std::nullopt;
        }
    }
    if (error) *error = value.is_null() ? kMissing : "Not a valid UUID.";
    return std::nullopt;
}

Loaded load_connect(const Json& body, const Defaults& defaults) {
    Loaded out;
    if (!body.is_object()) {
        out.errors = invalid_input();
        return out;
    }
    Fields f(body, out.errors);
    // The 2015 API says "user"; 0.7 says "username".
    const bool old_style = !body.contains("username") && body.contains("user");
    std::optional<std::string> username;
    f.string(old_style ? "user" : "username", username, true, 1, 512);
    if (!username && old_style && out.errors.contains("user")) {
        out.errors["username"] = out.errors["user"];
        out.errors.erase("user");
    }
    std::optional<std::string> conn_id;
    if (old_style && body.contains("conn_id") && body["conn_id"].is_string() && !canonical_uuid(body["conn_id"].get<std::string>())) {
        f.string("conn_id", conn_id, true, 1, 256);  // a 2015 client's own id
    } else {
        f.uuid("conn_id", conn_id, false);
    }
    Json channels = Json::array(), state_public_keys = Json::array();
    Json fresh_user_state = Json::object(), user_state = Json::object(), configs = Json::object(), info;
    f.string_list("channels", channels, false, 256);
    f.string_list("state_public_keys", state_public_keys, false, 256);
    f.user_state("fresh_user_state", fresh_user_state);
    f.user_state("user_state", user_state);
    channel_configs(f, "channel_configs", configs);
    info_field(f, out.errors, info);
    if (!out.ok()) return out;
    out.data = {{"username", *username},
                {"conn_id", conn_id ? *conn_id : defaults.new_uuid()},
                {"channels", channels},
                {"state_public_keys", state_public_keys},
                {"fresh_user_state", fresh_user_state},
                {"user_state", user_state},
                {"channel_configs", configs},
                {"info", info}};
    return out;
}

Loaded load_subscribe(const Json& body, const std::optional<std::string>& query_conn_id, const State& state) {
    Loaded out;
    if (!body.is_object()) {
        out.errors = invalid_input();
        return out;
    }
    Fields f(body, out.errors);
    Json conn_value = body.contains("conn_id") ? body["conn_id"] : (query_conn_id ? Json(*query_conn_id) : Json());
    std::optional<std::string> conn_id;
    if (conn_value.is_null()) {
        f.error("conn_id", kMissing);
    } else {
        std::string error;
        conn_id = resolve_connection(conn_value, state, &error);
        if (!conn_id) f.error("conn_id", error);
    }
    Json channels, configs = Json::object(), info;
    f.string_list("channels", channels, true, 256, 1);
    channel_configs(f, "channel_configs", configs);
    info_field(f, out.errors, info);
    if (!out.ok()) return out;
    out.data = {{"conn_id", *conn_id}, {"channels", channels}, {"channel_configs", configs}, {"info", info}};
    return out;
}

Loaded load_user_state(const Json& body, const State& state) {
    Loaded out;
    if (!body.is_object()) {
        out.errors = invalid_input();
        return out;
    }
    Fields f(body, out.errors);
    std::optional<std::string> user;
    if (f.string("user", user, true, 1, 512) && user && state.user(*user) == nullptr) f.error("user", "Unknown user");
    Json user_state = Json::object(), keys = nullptr;
    f.user_state("user_state", user_state);
    f.string_list("state_public_keys", keys, false, 256, 0, true);
    if (!out.ok()) return out;
    out.data = {{"user", *user}, {"user_state", user_state}, {"state_public_keys", keys}};
    return out;
}

Loaded load_user_status(const Json& body, const State& state) {
    if (!body.is_object()) return Loaded{Json(), invalid_input()};
    Json translated = {{"user", body.value("user", Json())}, {"user_state", {{"status", body.value("status", Json())}}}};
    if (!body.contains("user")) translated.erase("user");
    return load_user_state(translated, state);
}

Loaded load_messages(const Json& body, const Defaults& defaults) {
    Loaded loaded = load_many(body, [&](const Json& item) {
        Loaded out;
        Fields f(item, out.errors);
        out.data = Json::object();
        delivery_fields(f, out.data);
        std::optional<std::string> uuid, timestamp, user;
        std::optional<Json> message;
        f.uuid("uuid", uuid, false);
        f.datetime("timestamp", timestamp);
        f.string("user", user, true, 1, 512);
        f.dict("message", message);
        if (!out.ok()) return out;
        out.data["uuid"] = uuid ? *uuid : defaults.new_uuid();
        out.data["timestamp"] = timestamp ? *timestamp : iso_timestamp(defaults.now);
        out.data["user"] = *user;
        if (message) out.data["message"] = *message;
        out.data["edited"] = nullptr;
        return out;
    });
    if (!loaded.ok()) return loaded;
    // channelstream drops messages with nowhere to go (neither channel nor pm_users).
    Json kept = Json::array();
    for (Json& m : loaded.data)
        if (m["channel"].is_string() || !m["pm_users"].empty()) kept.push_back(std::move(m));
    loaded.data = std::move(kept);
    return loaded;
}

Loaded load_edits(const Json& body, const Defaults& defaults) {
    return load_many(body, [&](const Json& item) {
        Loaded out;
        Fields f(item, out.errors);
        out.data = Json::object();
        delivery_fields(f, out.data);
        std::optional<std::string> uuid, timestamp, user, edited;
        std::optional<Json> message;
        f.uuid("uuid", uuid, true);
        f.datetime("timestamp", timestamp);
        f.string("user", user, false, 1, 512);
        f.dict("message", message);
        f.datetime("edited", edited);
        if (!out.ok()) return out;
        out.data["uuid"] = *uuid;
        if (timestamp) out.data["timestamp"] = *timestamp;
        if (user) out.data["user"] = *user;
        if (message) out.data["message"] = *message;
        // channelstream 0.7.1 sends edited: null here (a post_load hook of its schema wipes
        // it); the time of the edit is what the field is for.
        out.data["edited"] = edited ? *edited : iso_timestamp(defaults.now);
        return out;
    });
}

Loaded load_deletes(const Json& body) {
    return load_many(body, [&](const Json& item) {
        Loaded out;
        Fields f(item, out.errors);
        out.data = Json::object();
        delivery_fields(f, out.data);
        std::optional<std::string> uuid;
        f.uuid("uuid", uuid, true);
        if (!out.ok()) return out;
        out.data["uuid"] = *uuid;
        return out;
    });
}

Loaded load_channel_config(const Json& body) {
    Loaded out;
    if (!body.is_object()) {
        out.errors = invalid_input();
        return out;
    }
    Fields f(body, out.errors);
    ChannelConfig config;
    f.boolean("notify_presence", config.notify_presence);
    f.boolean("store_history", config.store_history);
    f.integer("history_size", config.history_size, 0);
    f.boolean("broadcast_presence_with_user_lists", config.broadcast_presence_with_user_lists);
    f.boolean("notify_state", config.notify_state);
    f.boolean("store_frames", config.store_frames);
    if (out.ok()) out.data = config.to_json();
    return out;
}

Loaded load_channel_configs(const Json& body) {
    Loaded out;
    if (!body.is_object()) {
        out.errors = invalid_input();
        return out;
    }
    out.data = Json::object();
    for (const auto& [name, config] : body.items()) {
        if (name.empty() || Fields::code_points(name) > 256) {
            out.errors[name] = {length_message(1, 256)};
            continue;
        }
        Loaded one = load_channel_config(config);
        if (!one.ok()) out.errors[name] = one.errors;
        else out.data[name] = one.data;
    }
    return out;
}

Loaded load_info(const Json& body) {
    Loaded out;
    if (!body.is_object()) {
        out.errors = invalid_input();
        return out;
    }
    if (!body.contains("info")) {
        // The 2015 API: {"channels": [...]} (empty or absent: every channel).
        if (body.contains("channels")) {
            Loaded info = load_info_resolution({{"channels", body["channels"]}});
            if (!info.ok()) return info;
            if (info.data["channels"].empty()) info.data.erase("channels");
            info.data["include_connections"] = true;
            out.data = info.data;
            return out;
        }
        out.errors["info"] = {kMissing};
        return out;
    }
    Loaded info = load_info_resolution(body["info"]);
    if (!info.ok()) {
        out.errors["info"] = info.errors;
        return out;
    }
    if (!body["info"].contains("include_connections")) info.data["include_connections"] = true;
    out.data = info.data;
    return out;
}

Loaded load_disconnect(const Json& conn_id, const State& state) {
    // channelstream 0.7.1's DisconnectBodySchema checks only that conn_id is a UUID; an
    // unknown one is answered false by the operation, not refused here. Its view always
    // hands the schema a conn_id, None when absent, so marshmallow says "may not be null".
    Loaded out;
    std::string error;
    if (auto resolved = resolve_connection(conn_id, state, &error)) out.data = {{"conn_id", *resolved}};
    else if (error == "Unknown connection") out.data = {{"conn_id", *canonical_uuid(conn_id.get<std::string>())}};
    else out.errors["conn_id"] = {conn_id.is_null() ? kNotNull : error};
    return out;
}

}  // namespace hub::channelstream
