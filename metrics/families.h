// Building prometheus-cpp metric families by hand, for collectables that compute their values at scrape time
// (the store's gauges, the HTTP front end's counters).
// Thread safety: plain values.
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <deque>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace ocsp::metrics {

// The families of one scrape, in a fixed order. A deque, so the references Add returns stay valid as more
// families are added.
struct Families {
  std::deque<prometheus::MetricFamily> list;
  prometheus::MetricFamily& Add(std::string name, std::string help, prometheus::MetricType type) {
    list.push_back({std::move(name), std::move(help), type, {}});
    return list.back();
  }
  std::vector<prometheus::MetricFamily> Take() {
    return {std::make_move_iterator(list.begin()), std::make_move_iterator(list.end())};
  }
};

// One series of a gauge or counter family, its value set as the family's type says.
inline void Sample(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
                   double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  (family.type == prometheus::MetricType::Counter ? metric.counter.value : metric.gauge.value) = value;
  family.metric.push_back(std::move(metric));
}
inline void Gauge(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
                  double value) {
  Sample(family, std::move(labels), value);
}
inline void Counter(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
                    double value) {
  Sample(family, std::move(labels), value);
}

}  // namespace ocsp::metrics
