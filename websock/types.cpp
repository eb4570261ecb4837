#include "websock/types.hpp"

namespace websock {

std::string_view to_string(ErrorKind kind) noexcept {
    switch (kind) {
        case ErrorKind::Handshake: return "handshake";
        case ErrorKind::Protocol: return "protocol";
        case ErrorKind::Io: return "io";
        case ErrorKind::Timeout: return "timeout";
        case ErrorKind::Callback: return "callback";
        case ErrorKind::QueueFull: return "queue full";
        case ErrorKind::Limit: return "limit";
        case ErrorKind::Tls: return "tls";
    }
    return "unknown";
}

std::string_view to_string(CloseCode code) noexcept {
    switch (code) {
        case CloseCode::Normal: return "normal closure";
        case CloseCode::GoingAway: return "going away";
        case CloseCode::ProtocolError: return "protocol error";
        case CloseCode::UnsupportedData: return "unsupported data";
        case CloseCode::NoStatus: return "no status received";
        case CloseCode::Abnormal: return "abnormal closure";
        case CloseCode::InvalidPayload: return "invalid payload data";
        case CloseCode::PolicyViolation: return "policy violation";
        case CloseCode::MessageTooBig: return "message too big";
        case CloseCode::MandatoryExtension: return "mandatory extension";
        case CloseCode::InternalError: return "internal error";
        case CloseCode::ServiceRestart: return "service restart";
        case CloseCode::TryAgainLater: return "try again later";
        case CloseCode::BadGateway: return "bad gateway";
        case CloseCode::TlsHandshake: return "TLS handshake failure";
    }
    return "unknown";
}

}  // namespace websock
