// libFuzzer target: the incremental UTF-8 validator fed in pieces, against a one-shot
// independent reference decoder (test/unit/utf8_reference.hpp).
//
// Input: [seed] then the text. Oracles: fed in the pieces the seed picks, the validator
// accepts exactly what the reference accepts, fails at the same byte (fail fast), and
// complete() agrees; is_valid_utf8 agrees too.
#include <cstdint>
#include <string_view>

#include "test/fuzz/fuzz_common.hpp"
#include "test/unit/utf8_reference.hpp"
#include "websock/codec/utf8.hpp"

using websock::codec::is_valid_utf8;
using websock::codec::Utf8Validator;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint32_t seed = data[0];
    data += 1;
    size -= 1;
    const auto ref = utf8_reference::check(data, size);

    // one shot
    FUZZ_CHECK(is_valid_utf8({reinterpret_cast<const char*>(data), size}) == ref.valid);
    {
        Utf8Validator v;
        FUZZ_CHECK(v.feed(data, size) == (ref.fail_at == utf8_reference::npos));
        FUZZ_CHECK(v.complete() == ref.valid);
        FUZZ_CHECK(v.failed() == (ref.fail_at != utf8_reference::npos));
    }

    // in pieces: feed() turns false exactly in the piece holding the first bad byte
    Utf8Validator v;
    std::size_t pos = 0;
    for (std::size_t n : fuzz::chunk_sizes(size, seed)) {
        const bool ok = v.feed(data + pos, n);
        const bool bad_in_piece = ref.fail_at != utf8_reference::npos && ref.fail_at < pos + n;
        FUZZ_CHECK(ok == !bad_in_piece);
        pos += n;
        if (!ok) {
            FUZZ_CHECK(v.failed());
            FUZZ_CHECK(!v.feed(data, size));  // stays failed
            break;
        }
        // between pieces, complete() says whether the text so far ends on a boundary
        if (size <= 512) FUZZ_CHECK(v.complete() == utf8_reference::check(data, pos).valid);
    }
    FUZZ_CHECK(v.complete() == ref.valid);

    // reset() starts over
    v.reset();
    FUZZ_CHECK(v.complete() && !v.failed());
    FUZZ_CHECK(v.feed(data, size) == (ref.fail_at == utf8_reference::npos));
    return 0;
}
