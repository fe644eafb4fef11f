//! The plugins' gauges on `/metrics`: at each scrape every plugin instance of the running
//! configuration is asked for its gauges (`Plugin::gauges`), which become Prometheus gauge
//! families. The families are not known in advance, so the collector declares none.

use std::collections::BTreeMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge as GaugeValue, LabelPair, Metric, MetricFamily, MetricType};
use tollgate_plugin_api::gauges::is_valid_name;
use tollgate_plugin_api::Gauge;

use crate::config::SharedConfig;

/// Collects the gauges of the plugins of the configuration being served.
pub struct PluginGauges {
    config: SharedConfig,
}

impl PluginGauges {
    /// Gauges of the plugins of `config` (read again at each scrape: reloads count).
    pub fn new(config: SharedConfig) -> Self {
        Self { config }
    }
}

impl Collector for PluginGauges {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let config = self.config.load();
        let mut families: BTreeMap<&'static str, MetricFamily> = BTreeMap::new();
        for (_, plugin) in config.plugins.values() {
            for gauge in plugin.gauges() {
                let Some(metric) = metric(&gauge) else {
                    continue;
                };
                families
                    .entry(gauge.name)
                    .or_insert_with(|| {
                        let mut family = MetricFamily::default();
                        family.set_name(gauge.name.to_string());
                        family.set_help(gauge.help.to_string());
                        family.set_field_type(MetricType::GAUGE);
                        family
                    })
                    .mut_metric()
                    .push(metric);
            }
        }
        families.into_values().collect()
    }
}

/// One sample, or `None` (and a debug line) when a name is not a metric name.
fn metric(gauge: &Gauge) -> Option<Metric> {
    let names_valid =
        is_valid_name(gauge.name) && gauge.labels.iter().all(|(name, _)| is_valid_name(name));
    if !names_valid {
        tracing::debug!(
            name = gauge.name,
            "a plugin gauge with an invalid name was left out"
        );
        return None;
    }
    let mut labels: Vec<LabelPair> = gauge
        .labels
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.clone());
            pair
        })
        .collect();
    labels.sort_by(|a, b| a.name().cmp(b.name()));
    let mut value = GaugeValue::default();
    value.set_value(gauge.value);
    let mut metric = Metric::default();
    metric.set_label(labels);
    metric.set_gauge(value);
    Some(metric)
}
