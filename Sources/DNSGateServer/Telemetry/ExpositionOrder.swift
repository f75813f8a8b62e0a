/// Puts a Prometheus text exposition in a stable order: families by name, and the series of a
/// counter or gauge family by their text. swift-prometheus emits both in its dictionaries' order,
/// which changes from process to process, so two scrapes of one server could not be compared line
/// by line. Histogram series keep their order (their bucket lines must stay as they are).
enum ExpositionOrder {
    static func sorted(_ text: [UInt8]) -> [UInt8] {
        struct Family { var name: Substring; var header: [Substring] = []; var series: [Substring] = []; var isHistogram = false }
        let s = String(decoding: text, as: UTF8.self)
        var families: [Family] = []
        for line in s.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                if families.last?.name != name { families.append(Family(name: name)) }
                families[families.count - 1].header.append(line)
                if line.hasPrefix("# TYPE "), line.hasSuffix(" histogram") { families[families.count - 1].isHistogram = true }
            } else if families.isEmpty {
                families.append(Family(name: "", series: [line]))
            } else {
                families[families.count - 1].series.append(line)
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        for f in families.sorted(by: { $0.name < $1.name }) {
            for line in f.header + (f.isHistogram ? f.series : f.series.sorted()) {
                out.append(contentsOf: line.utf8)
                out.append(UInt8(ascii: "\n"))
            }
        }
        return out
    }
}
