#include "nicoffload/daemon/metrics.h"

#include <httplib.h>

#include <cstdio>

namespace nicoffload::daemon {

void MetricsRegistry::set(const std::string& name, const std::string& labels, double value) {
  families_[name].samples[labels] = value;
}

void MetricsRegistry::describe(const std::string& name, const std::string& type, const std::string& help) {
  auto& f = families_[name];
  f.type = type;
  f.help = help;
}

std::string MetricsRegistry::render() const {
  std::string out;
  char num[64];
  for (const auto& [name, f] : families_) {
    if (!f.help.empty()) out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name + " " + f.type + "\n";
    for (const auto& [labels, value] : f.samples) {
      std::snprintf(num, sizeof num, "%.17g", value);
      out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + num + "\n";
    }
  }
  return out;
}

struct MetricsServer::Impl {
  httplib::Server http;
  std::mutex mu;
  std::string text = "# nicoffloadd starting\n";
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& host, int port) {
  if (host != "127.0.0.1" && host != "::1" && host != "localhost")
    return makeError(ErrorCode::kInvalidValue, "daemon.metrics_listen", host,
                     "the metrics endpoint listens on loopback only (127.0.0.1 or ::1)");
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->impl_ = std::make_unique<Impl>();
  auto* impl = s->impl_.get();
  impl->http.Get("/metrics", [impl](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(impl->mu);
    res.set_content(impl->text, "text/plain; version=0.0.4");
  });
  if (port == 0) {
    s->port_ = impl->http.bind_to_any_port(host.c_str());
    if (s->port_ < 0) return makeError(ErrorCode::kIo, "daemon.metrics_listen", host, "cannot bind the metrics endpoint");
  } else {
    if (!impl->http.bind_to_port(host.c_str(), port))
      return makeError(ErrorCode::kIo, "daemon.metrics_listen", host + ":" + std::to_string(port),
                       "cannot bind the metrics endpoint (port in use?)");
    s->port_ = port;
  }
  s->thread_ = std::thread([impl] { impl->http.listen_after_bind(); });
  return s;
}

MetricsServer::~MetricsServer() {
  if (impl_) impl_->http.stop();
  if (thread_.joinable()) thread_.join();
}

void MetricsServer::publish(std::string text) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->text = std::move(text);
}

}  // namespace nicoffload::daemon
