// Small value formats of the channelstream API, as Python prints them: UUIDs (str(uuid.UUID)),
// timestamps (datetime.isoformat()), and their parsing as marshmallow reads them.
// Pure functions, any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hub::channelstream {

/// Microseconds since the Unix epoch, UTC: how operations carry time.
using Micros = std::int64_t;

/// The current time in Micros.
Micros now_micros() noexcept;

/// "2020-09-13T12:26:40.123456", or without the fraction when it is zero (Python's
/// datetime.utcnow().isoformat(), which channelstream sends).
std::string iso_timestamp(Micros at);

/// Read an ISO 8601 date-time as marshmallow's DateTime field does ("2010-01-01T01:01",
/// "2010-01-01 01:01:02.5", "...Z", "...+02:00") and print it back as Python's isoformat()
/// would. nullopt when it is not a date-time.
std::optional<std::string> normalize_iso_datetime(std::string_view text);

/// A random (version 4) UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
std::string random_uuid();
/// A UUID made from `seed` and `index` (SHA-256, laid out as version 4): every node applying
/// the same operation derives the same ids for what it creates.
std::string derive_uuid(std::string_view seed, std::uint64_t index);
/// Python's uuid.UUID(text) then str(): accepts 32 hex digits with or without hyphens, in
/// braces or with "urn:uuid:", any case; gives the lower-case hyphenated form.
std::optional<std::string> canonical_uuid(std::string_view text);

}  // namespace hub::channelstream
