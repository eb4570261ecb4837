#include "hub/channelstream/sync.hpp"

#include <algorithm>

namespace hub::channelstream {

bool JoinBuffer::add(nlohmann::json op, std::size_t bytes) {
    if (ops_.size() + 1 > max_ops_ || bytes_ + bytes > max_bytes_) {
        clear();
        return false;
    }
    ops_.push_back(std::move(op));
    bytes_ += bytes;
    return true;
}

std::optional<std::vector<nlohmann::json>> JoinBuffer::after(const std::string& last_applied) const {
    auto found = std::find_if(ops_.begin(), ops_.end(), [&](const nlohmann::json& op) {
        auto id = op.find("id");
        return id != op.end() && id->is_string() && id->get_ref<const std::string&>() == last_applied;
    });
    if (found == ops_.end()) return std::nullopt;
    return std::vector<nlohmann::json>(std::next(found), ops_.end());
}

std::vector<nlohmann::json> JoinBuffer::take_all() {
    std::vector<nlohmann::json> all(std::make_move_iterator(ops_.begin()), std::make_move_iterator(ops_.end()));
    clear();
    return all;
}

void JoinBuffer::clear() {
    ops_.clear();
    bytes_ = 0;
}

}  // namespace hub::channelstream
