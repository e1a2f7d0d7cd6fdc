#include "nicoffload/daemon/failure_book.h"

#include <algorithm>
#include <vector>

#include "nicoffload/daemon/control.h"

namespace nicoffload::daemon {

using json = nlohmann::json;
using std::chrono::milliseconds;

namespace {

std::int64_t msBetween(FailureBook::Clock::time_point from, FailureBook::Clock::time_point to) {
  return std::chrono::duration_cast<milliseconds>(to - from).count();
}

}  // namespace

std::string_view toString(FailureBook::Kind kind) {
  switch (kind) {
    case FailureBook::Kind::kKernel:
      return "kernel";
    case FailureBook::Kind::kDevice:
      return "device";
    case FailureBook::Kind::kPool:
      return "pool";
    case FailureBook::Kind::kPass:
      return "pass";
  }
  return "?";
}

FailureBook::FailureBook(milliseconds min, milliseconds max)
    : min_(std::max(min, milliseconds(1))), max_(std::max(max, min_)) {}

const FailureBook::Entry& FailureBook::failed(Kind kind, const std::string& object, Error error,
                                              Clock::time_point now) {
  auto [it, fresh] = entries_.try_emplace(object);
  Entry& e = it->second;
  e.kind = kind;
  e.error = std::move(error);
  e.seen = sweeps_[static_cast<std::size_t>(kind)];
  ++e.attempts;
  if (fresh) {
    e.since = now;
    e.backoff = min_;
    e.retry_at = now + e.backoff;
  } else if (now >= e.retry_at) {
    e.backoff = std::min(e.backoff * 2, max_);
    e.retry_at = now + e.backoff;
  }
  return e;
}

void FailureBook::cleared(const std::string& object) { entries_.erase(object); }

void FailureBook::beginSweep(Kind kind) { ++sweeps_[static_cast<std::size_t>(kind)]; }

std::size_t FailureBook::endSweep(Kind kind,
                                  const std::function<bool(const std::string&)>& covers) {
  return std::erase_if(entries_, [&](const auto& item) {
    const auto& [object, e] = item;
    return e.kind == kind && e.seen != sweeps_[static_cast<std::size_t>(kind)] &&
           (!covers || covers(object));
  });
}

std::size_t FailureBook::postponeDue(Clock::time_point now) {
  std::size_t n = 0;
  for (auto& [object, e] : entries_) {
    if (e.kind == Kind::kPool || e.retry_at > now) continue;
    e.backoff = std::min(e.backoff * 2, max_);
    e.retry_at = now + e.backoff;
    ++n;
  }
  return n;
}

FailureBook::Clock::time_point FailureBook::nextRetry() const {
  auto next = Clock::time_point::max();
  for (const auto& [object, e] : entries_)
    if (e.kind != Kind::kPool) next = std::min(next, e.retry_at);
  return next;
}

std::size_t FailureBook::count(Kind kind) const {
  return static_cast<std::size_t>(std::count_if(
      entries_.begin(), entries_.end(), [&](const auto& item) { return item.second.kind == kind; }));
}

const FailureBook::Entry* FailureBook::find(const std::string& object) const {
  const auto it = entries_.find(object);
  return it == entries_.end() ? nullptr : &it->second;
}

json FailureBook::toJson(const std::string& object, const Entry& entry, Clock::time_point now) {
  return {{"object", object},
          {"kind", toString(entry.kind)},
          {"error", control::errorJson(entry.error)},
          {"attempts", entry.attempts},
          {"failing_for_ms", std::max<std::int64_t>(0, msBetween(entry.since, now))},
          {"retry_in_ms", std::max<std::int64_t>(0, msBetween(now, entry.retry_at))}};
}

json FailureBook::summaryJson(Clock::time_point now, std::size_t listed) const {
  std::vector<const std::pair<const std::string, Entry>*> oldest;
  oldest.reserve(entries_.size());
  for (const auto& item : entries_) oldest.push_back(&item);
  const auto shown = std::min(listed, oldest.size());
  std::partial_sort(oldest.begin(), oldest.begin() + static_cast<std::ptrdiff_t>(shown),
                    oldest.end(), [](const auto* a, const auto* b) {
                      return a->second.since != b->second.since ? a->second.since < b->second.since
                                                                : a->first < b->first;
                    });
  json list = json::array();
  for (std::size_t i = 0; i < shown; ++i) list.push_back(toJson(oldest[i]->first, oldest[i]->second, now));
  const auto next = nextRetry();
  return {{"objects", entries_.size()},
          {"kernel", count(Kind::kKernel)},
          {"device", count(Kind::kDevice)},
          {"pool", count(Kind::kPool)},
          {"pass", count(Kind::kPass)},
          {"next_retry_in_ms",
           next == Clock::time_point::max() ? json(nullptr)
                                            : json(std::max<std::int64_t>(0, msBetween(now, next)))},
          {"oldest", list}};
}

}  // namespace nicoffload::daemon
