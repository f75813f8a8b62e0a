import Prometheus

extension MetricNameDescriptor {
    /// The descriptor of a whole metric name, split at its last underscore into base and unit, so that
    /// the exposed name is `name` again: the registry's factories that take a plain name are deprecated.
    init(_ name: String, help: String) {
        guard let cut = name.lastIndex(of: "_") else { preconditionFailure("metric name \(name) has no unit part") }
        self.init(metricName: String(name[..<cut]), unitName: String(name[name.index(after: cut)...]), helpText: help)
    }
}
