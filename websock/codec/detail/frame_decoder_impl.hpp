// FrameDecoder::feed, kept in a header because it is a template over the handler (so the
// per-frame calls inline on the hot path). Users include websock/codec/frame.hpp instead.
#pragma once

#include <algorithm>
#include <cstring>

#include "websock/codec/frame.hpp"  // so that this header compiles alone too (it is installed)

namespace websock::codec {

template <class Handler>
FrameDecoder::Result FrameDecoder::feed(std::uint8_t* data, std::size_t size, Handler& handler) {
    Result result;
    std::size_t pos = 0;
    while (pos < size || (state_ == State::Payload && payload_remaining_ == 0)) {
        if (state_ == State::Failed) {
            result.failed = true;
            break;
        }
        if (state_ == State::Header) {
            // Fast path: the whole header is in the input and nothing is buffered.
            std::size_t need = 0;
            if (header_fill_ == 0 && size - pos >= 2) {
                std::size_t avail = std::min(size - pos, kMaxFrameHeader);
                std::memcpy(header_buf_.data(), data + pos, avail);
                header_fill_ = avail;
                if (!parse_header(need)) {
                    result.failed = true;
                    header_fill_ = 0;
                    break;
                }
                if (need <= avail) {
                    pos += need;
                    header_fill_ = 0;
                } else {
                    pos += avail;
                    // need more bytes of the header; keep what we have
                    continue;
                }
            } else {
                // Slow path: accumulate byte by byte until the header is complete.
                header_buf_[header_fill_++] = data[pos++];
                if (!parse_header(need)) {
                    result.failed = true;
                    break;
                }
                if (need == 0 || header_fill_ < need) continue;
                header_fill_ = 0;
            }
            state_ = State::Payload;
            payload_remaining_ = header_.payload_length;
            mask_offset_ = 0;
            if (!handler.on_frame_header(header_)) {
                result.stopped = true;
                break;
            }
            continue;
        }
        // State::Payload
        if (payload_remaining_ > 0) {
            std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(payload_remaining_, size - pos));
            if (take == 0) break;
            std::uint8_t* chunk = data + pos;
            if (header_.masked) mask_offset_ = apply_mask(chunk, take, header_.mask, mask_offset_);
            pos += take;
            payload_remaining_ -= take;
            if (!handler.on_frame_payload(chunk, take)) {
                result.stopped = true;
                if (payload_remaining_ == 0) {
                    // The payload is complete; still deliver the end on the next feed.
                }
                break;
            }
        }
        if (payload_remaining_ == 0) {
            state_ = State::Header;
            if (!handler.on_frame_end(header_)) {
                result.stopped = true;
                break;
            }
        }
    }
    if (state_ == State::Failed) result.failed = true;
    result.consumed = pos;
    return result;
}

}  // namespace websock::codec
