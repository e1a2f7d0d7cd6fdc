// What failed, and when it is tried again: one entry per object, each with
// its own attempts and backoff (as cilium's statedb reconciler keeps a
// status per object), so that one object the kernel refuses for hours does
// not hold back the retry of one that failed a moment ago.
//
// Objects are named as their backend names them: a kernel object
// ("route 10.0.3.1/32 dev rep3 table 254", SwObjectFailure::object), a VF
// ("vf 3"), a vDPA device ("vdpa vf 3"). Failures no object owns (a flow
// rule the device would not destroy, a read-back that failed, an internal
// error) go to one entry, kPassObject, so that they are retried as well.
//
// Retries: the controller runs a retry pass at nextRetry(), the earliest
// retry time of any entry. A pass retries every failed object it covers,
// due or not; an object that fails again before it was due keeps its
// retry time and backoff (its attempts still count), so each object's
// backoff grows by its own failures only: min, 2·min, ... up to max.
//
// Ends: an entry goes when its object succeeds (cleared()), or when a sweep
// that covered it did not see it fail (beginSweep() / endSweep(): a full
// pass tries every object of its kind; a batch the objects it touched).
//
// Pure: the time is given (`now`), nothing is read or written.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "nicoffload/common/error.h"

namespace nicoffload::daemon {

class FailureBook {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Kind : std::uint8_t {
    kKernel,  // a software-path object
    kDevice,  // a VF's settings, a vDPA device
    kPool,    // a warm-pool vDPA device: its refill tries again after the
              // next full pass (not a retry pass: nextRetry() skips these)
    kPass,    // kPassObject: failures no object owns
  };
  static constexpr std::size_t kKinds = 4;
  static constexpr std::string_view kPassObject = "reconcile pass";

  struct Entry {
    Kind kind = Kind::kKernel;
    Error error;                      // the last one
    std::uint32_t attempts = 0;       // failures in a row
    Clock::time_point since;          // the first of them
    Clock::time_point retry_at;       // when a retry pass is due for it
    std::chrono::milliseconds backoff{0};
    std::uint64_t seen = 0;           // the sweep of its kind that last saw it fail
  };

  FailureBook(std::chrono::milliseconds min, std::chrono::milliseconds max);

  // `object` failed: a new entry retries after min; one that was due
  // (retry_at <= now) doubles its backoff (up to max) from now; one that
  // was not keeps its retry time. The error is the latest either way.
  const Entry& failed(Kind kind, const std::string& object, Error error, Clock::time_point now);
  // `object` is in place (or no longer wanted): forgotten.
  void cleared(const std::string& object);

  // A sweep: every object of a kind that `covers` selects (all when
  // empty) is tried; those that do not fail again between beginSweep() and
  // endSweep() are forgotten then, and counted. Sweeps of one kind do not
  // nest; those of different kinds may overlap.
  void beginSweep(Kind kind);
  std::size_t endSweep(Kind kind, const std::function<bool(const std::string&)>& covers = {});

  // After a retry pass: an entry still due that the pass neither saw fail
  // nor found in place (a pass that could not reach it: the read-back
  // failed, say) backs off as if it had failed, so that retry passes never
  // run back to back. Returns how many.
  std::size_t postponeDue(Clock::time_point now);
  // The earliest retry time (kPool entries aside); time_point::max() when
  // nothing failed.
  Clock::time_point nextRetry() const;
  std::size_t size() const { return entries_.size(); }
  std::size_t count(Kind kind) const;
  const Entry* find(const std::string& object) const;
  const std::map<std::string, Entry>& entries() const { return entries_; }

  // {"object", "kind", "error", "attempts", "failing_for_ms", "retry_in_ms"}.
  static nlohmann::json toJson(const std::string& object, const Entry& entry,
                               Clock::time_point now);
  // status's summary: counts per kind, the next retry, the oldest
  // failures (at most `listed`, longest failing first).
  nlohmann::json summaryJson(Clock::time_point now, std::size_t listed) const;

 private:
  std::chrono::milliseconds min_;
  std::chrono::milliseconds max_;
  std::map<std::string, Entry> entries_;
  std::uint64_t sweeps_[kKinds] = {};  // by Kind: the sweep now open, or the last
};

std::string_view toString(FailureBook::Kind kind);

}  // namespace nicoffload::daemon
