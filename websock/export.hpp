// WEBSOCK_API marks what libwebsock.so exports. The library is built with
// -fvisibility=hidden -fvisibility-inlines-hidden, so everything else (websock::detail, the
// helpers inside each .cpp) stays out of its dynamic symbol table: programs cannot come to
// depend on it, and it can change without breaking them (docs/design.md, "ABI").
#pragma once

#if defined(__GNUC__) || defined(__clang__)
/// Exported from libwebsock.so: a public class (its out-of-line members, vtable and
/// typeinfo) or a public free function.
#define WEBSOCK_API __attribute__((visibility("default")))
/// Kept out of libwebsock.so although its class is exported: a private member that only
/// the library calls and whose signature names websock::detail.
#define WEBSOCK_LOCAL __attribute__((visibility("hidden")))
#else
#define WEBSOCK_API
#define WEBSOCK_LOCAL
#endif
