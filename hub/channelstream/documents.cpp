// The documents the channelstream API serves: its OpenAPI description and the admin page.
#include "hub/channelstream/api.hpp"

namespace hub::channelstream {

namespace {

Json string_list_schema() { return {{"type", "array"}, {"items", {{"type", "string"}}}}; }

Json user_state_schema() {
    return {{"type", "object"}, {"additionalProperties", {{"description", "string, number, boolean or null"}}}};
}

Json body_parameter(const char* definition) {
    return Json::array({{{"in", "body"}, {"name", "body"}, {"required", true}, {"schema", {{"$ref", std::string("#/definitions/") + definition}}}}});
}

Json signed_operation(const char* summary, const char* definition, const char* tag = "API") {
    return {{"tags", {tag}},
            {"summary", summary},
            {"security", Json::array({{{"APIKeyHeader", Json::array()}}})},
            {"consumes", {"application/json"}},
            {"produces", {"application/json"}},
            {"parameters", body_parameter(definition)},
            {"responses",
             {{"200", {{"description", "Success"}}},
              {"401", {{"description", "Bad Signature"}}},
              {"403", {{"description", "No signature, or the caller's address is not allowed"}}},
              {"422", {{"description", "Unprocessable Entity: {field: [messages]}"}}}}}};
}

Json make_description() {
    const Json channel_config = {{"type", "object"},
                                 {"properties",
                                  {{"notify_presence", {{"type", "boolean"}, {"default", false}}},
                                   {"store_history", {{"type", "boolean"}, {"default", false}}},
                                   {"history_size", {{"type", "integer"}, {"default", 10}, {"minimum", 0}}},
                                   {"broadcast_presence_with_user_lists", {{"type", "boolean"}, {"default", false}}},
                                   {"notify_state", {{"type", "boolean"}, {"default", false}}},
                                   {"store_frames", {{"type", "boolean"}, {"default", true}}}}}};
    const Json info = {{"type", "object"},
                       {"properties",
                        {{"include_history", {{"type", "boolean"}, {"default", true}}},
                         {"include_users", {{"type", "boolean"}, {"default", true}}},
                         {"channels", string_list_schema()},
                         {"exclude_channels", string_list_schema()},
                         {"include_connections", {{"type", "boolean"}, {"default", false}}},
                         {"return_public_state", {{"type", "boolean"}, {"default", false}}}}}};
    const Json delivery = {{"pm_users", string_list_schema()},
                           {"exclude_users", string_list_schema()},
                           {"channel", {{"type", "string"}, {"minLength", 1}, {"maxLength", 256}}},
                           {"no_history", {{"type", "boolean"}, {"default", false}}}};
    Json message = {{"type", "object"}, {"required", {"user"}}, {"properties", delivery}};
    message["properties"]["uuid"] = {{"type", "string"}, {"format", "uuid"}};
    message["properties"]["timestamp"] = {{"type", "string"}, {"format", "date-time"}};
    message["properties"]["user"] = {{"type", "string"}, {"minLength", 1}, {"maxLength", 512}};
    message["properties"]["message"] = {{"type", "object"}};
    Json edit = message;
    edit["required"] = {"uuid"};
    edit["properties"]["edited"] = {{"type", "string"}, {"format", "date-time"}};
    Json deletion = {{"type", "object"}, {"required", {"uuid"}}, {"properties", delivery}};
    deletion["properties"]["uuid"] = {{"type", "string"}, {"format", "uuid"}};

    Json spec = {
        {"swagger", "2.0"},
        {"info",
         {{"title", "Channelstream API (websock-hub)"},
          {"version", "0.7.1"},
          {"description",
           "channelstream 0.7.1's API on websock-hub. Server API requests are signed: header X-Channelstream-Secret "
           "holding an itsdangerous TimestampSigner value, or X-Channelstream-Signature (t=TIME,v2=HMAC-SHA256 over "
           "method, path, body digest and time). See docs/hub.md."}}},
        {"securityDefinitions",
         {{"APIKeyHeader", {{"type", "apiKey"}, {"name", "X-Channelstream-Secret"}, {"in", "header"}}}}},
        {"definitions",
         {{"ConnectBody",
           {{"type", "object"},
            {"required", {"username"}},
            {"properties",
             {{"username", {{"type", "string"}, {"minLength", 1}, {"maxLength", 512}}},
              {"conn_id", {{"type", "string"}, {"format", "uuid"}}},
              {"channels", string_list_schema()},
              {"state_public_keys", string_list_schema()},
              {"fresh_user_state", user_state_schema()},
              {"user_state", user_state_schema()},
              {"channel_configs", {{"type", "object"}, {"additionalProperties", channel_config}}},
              {"info", info}}}}},
          {"SubscribeBody",
           {{"type", "object"},
            {"required", {"conn_id", "channels"}},
            {"properties",
             {{"conn_id", {{"type", "string"}, {"format", "uuid"}}},
              {"channels", string_list_schema()},
              {"channel_configs", {{"type", "object"}, {"additionalProperties", channel_config}}},
              {"info", info}}}}},
          {"UnsubscribeBody",
           {{"type", "object"},
            {"required", {"conn_id", "channels"}},
            {"properties", {{"conn_id", {{"type", "string"}, {"format", "uuid"}}}, {"channels", string_list_schema()}, {"info", info}}}}},
          {"UserStateBody",
           {{"type", "object"},
            {"required", {"user"}},
            {"properties",
             {{"user", {{"type", "string"}}}, {"user_state", user_state_schema()}, {"state_public_keys", string_list_schema()}}}}},
          {"UserStatusBody", {{"type", "object"}, {"required", {"user"}}, {"properties", {{"user", {{"type", "string"}}}, {"status", Json::object()}}}}},
          {"MessagesBody", {{"type", "array"}, {"items", message}}},
          {"MessageEditBody", {{"type", "array"}, {"items", edit}}},
          {"MessagesDeleteBody", {{"type", "array"}, {"items", deletion}}},
          {"ChannelConfigBody", {{"type", "object"}, {"additionalProperties", channel_config}}},
          {"ChannelInfoBody", {{"type", "object"}, {"properties", {{"info", info}}}}},
          {"DisconnectBody", {{"type", "object"}, {"properties", {{"conn_id", {{"type", "string"}, {"format", "uuid"}}}}}}}}},
    };
    Json& paths = spec["paths"];
    paths["/connect"]["post"] = signed_operation("Connects a user: creates the connection, subscribes it", "ConnectBody");
    paths["/subscribe"]["post"] = signed_operation("Subscribes a connection to channels", "SubscribeBody");
    paths["/unsubscribe"]["post"] = signed_operation("Removes a connection from channels", "UnsubscribeBody");
    paths["/user_state"]["post"] = signed_operation("Sets a user's state", "UserStateBody");
    paths["/user_status"]["post"] = signed_operation("Sets a user's status (2015 API)", "UserStatusBody");
    paths["/message"]["post"] = signed_operation("Sends messages to channels and/or users", "MessagesBody");
    paths["/message"]["patch"] = signed_operation("Edits messages in history and tells the clients", "MessageEditBody");
    paths["/message"]["delete"] = signed_operation("Deletes messages from history and tells the clients", "MessagesDeleteBody");
    paths["/channel_config"]["post"] = signed_operation("Sets channel configurations", "ChannelConfigBody");
    paths["/info"]["post"] = signed_operation("Returns channel information (an empty body: every channel)", "ChannelInfoBody");
    const Json conn_param = {{"in", "query"}, {"name", "conn_id"}, {"type", "string"}, {"required", true}};
    paths["/listen"]["get"] = {{"tags", {"Client API"}},
                               {"summary", "Long poll: a JSON list of messages, [] after wake_connections_after; JSONP with callback"},
                               {"parameters", Json::array({conn_param, {{"in", "query"}, {"name", "callback"}, {"type", "string"}}})},
                               {"responses", {{"200", {{"description", "Success"}}}, {"401", {{"description", "Unknown connection"}}}}}};
    paths["/ws"]["get"] = {{"tags", {"Client API"}},
                           {"summary", "WebSocket: frames are JSON lists of messages; [] is a heartbeat"},
                           {"parameters", Json::array({conn_param})},
                           {"responses", {{"101", {{"description", "Switching Protocols"}}}, {"401", {{"description", "Unknown connection"}}}}}};
    paths["/disconnect"]["get"] = {{"tags", {"Client API"}},
                                   {"summary", "Permanently removes a connection"},
                                   {"parameters", Json::array({conn_param})},
                                   {"responses", {{"200", {{"description", "true, or false for an unknown connection"}}}, {"422", {{"description", "conn_id missing or not a UUID"}}}}}};
    paths["/disconnect"]["post"] = {{"tags", {"Client API"}},
                                    {"summary", "Permanently removes a connection"},
                                    {"parameters", body_parameter("DisconnectBody")},
                                    {"responses", {{"200", {{"description", "true, or false for an unknown connection"}}}, {"422", {{"description", "conn_id missing or not a UUID"}}}}}};
    const Json admin = {{"tags", {"Admin API"}},
                        {"summary", "Server information for the admin panel (HTTP Basic with admin_user and admin_secret, or the /admin/sign_in cookie)"},
                        {"responses", {{"200", {{"description", "Success"}}}, {"401", {{"description", "Admin credentials required"}}}}}};
    paths["/admin/admin.json"]["get"] = admin;
    paths["/admin/admin.json"]["post"] = admin;
    return spec;
}

constexpr std::string_view kAdminPage = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>websock-hub: channelstream admin</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.stats td:first-child{font-weight:bold}code{font-size:.9em}#error{color:#b00}
</style></head><body>
<h1>channelstream admin <small id="version"></small></h1>
<p><a href="admin/sign_out">sign out</a></p>
<p id="error"></p>
<table class="stats"><tbody id="stats"></tbody></table>
<h2>Channels</h2><table><thead><tr><th>name</th><th>users</th><th>connections</th><th>settings</th><th>history</th><th>last active</th></tr></thead><tbody id="channels"></tbody></table>
<h2>Users</h2><table><thead><tr><th>user</th><th>public state</th><th>connections</th></tr></thead><tbody id="users"></tbody></table>
<p><label><input type="checkbox" id="auto" checked> refresh every 5 s</label></p>
<script>
"use strict";
function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); }
function fill(id, rows) { const body = document.getElementById(id); body.replaceChildren(...rows); }
function row(values) { const tr = document.createElement("tr"); values.forEach(v => cell(tr, v)); return tr; }
async function refresh() {
  try {
    const response = await fetch("admin/admin.json", {credentials: "same-origin", cache: "no-store"});
    if (response.status === 401) { location.href = "admin/sign_in"; return; }  // the session ended
    if (!response.ok) throw new Error("admin.json answered " + response.status);
    const data = await response.json();
    document.getElementById("error").textContent = "";
    document.getElementById("version").textContent = "API " + data.version;
    fill("stats", [["uptime", data.uptime], ["channels", data.total_channels], ["connections", data.total_connections],
      ["users connected", data.unique_user_count], ["users remembered", data.remembered_user_count],
      ["messages delivered", data.total_messages], ["messages sent", data.total_unique_messages]].map(row));
    fill("channels", Object.values(data.channels).sort((a, b) => a.name.localeCompare(b.name)).map(c =>
      row([c.name, c.users.join(", "), c.total_connections, JSON.stringify(c.settings), c.history.length, c.last_active])));
    fill("users", data.users.map(u => row([u.user, JSON.stringify(u.state), u.connections.join(", ")])));
  } catch (e) {
    document.getElementById("error").textContent = String(e);
  }
}
refresh();
setInterval(() => { if (document.getElementById("auto").checked) refresh(); }, 5000);
</script>
</body></html>
)html";

// The form posts to "sign_in", relative to this page (url_prefix + /admin/sign_in).
constexpr std::string_view kSignInHead = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>websock-hub: channelstream admin sign-in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;color:#222}
form{padding:25px;background:#fafafa;border:1px solid #eaeaea;box-shadow:10px 10px 10px rgba(0,0,0,.1)}
h1{font-size:1.3em;margin-top:0}input{display:block;margin:.5em 0;padding:.3em}#error{color:#b00}
</style></head><body>
<form action="sign_in" method="post">
<h1>channelstream admin</h1>
)html";
constexpr std::string_view kSignInFailed = R"html(<p id="error">Wrong user name or password.</p>
)html";
constexpr std::string_view kSignInTail = R"html(<input type="text" name="username" placeholder="Username" autocomplete="username" required autofocus>
<input type="password" name="password" placeholder="Password" autocomplete="current-password" required>
<input type="submit" value="Sign In">
</form>
</body></html>
)html";

}  // namespace

const Json& openapi_description() {
    static const Json description = make_description();
    return description;
}

std::string_view admin_page_html() { return kAdminPage; }

std::string sign_in_page_html(bool failed) {
    std::string page(kSignInHead);
    if (failed) page += kSignInFailed;
    page += kSignInTail;
    return page;
}

}  // namespace hub::channelstream
