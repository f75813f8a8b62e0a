@testable import DNSGateServer
import XCTest

/// The queue between the listeners and the telemetry: batches moved in whole and single records
/// come out oldest first, and nothing past the capacity is kept.
final class BoundedBatchTests: XCTestCase {
    private func taken(_ q: BoundedBatch<Int>) -> [Int] {
        var t = BoundedBatch<Int>.Taken()
        q.take(into: &t)
        defer { q.recycle(&t) }
        return t.items + t.chunks.flatMap { $0 }
    }

    func testBatchesAndSingleRecordsComeOutInTheOrderTheyWentIn() {
        let q = BoundedBatch<Int>(capacity: 100)
        var batch = [1, 2, 3]
        XCTAssertEqual(q.push(moving: &batch), 0)
        XCTAssertTrue(batch.isEmpty, "the batch is handed over, not copied")
        q.push(4)
        batch = [5, 6]
        q.push(moving: &batch)       // a chunk of its own: records were pending
        q.push(7)                    // after the chunk, not before it
        batch = [8]
        q.push(moving: &batch)
        XCTAssertEqual(q.approximateCount.value, 8)
        XCTAssertEqual(taken(q), [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertTrue(q.isEmpty)
        XCTAssertEqual(taken(q), [])
    }

    func testTheNewestOfABatchPastTheCapacityAreDroppedAndCounted() {
        let q = BoundedBatch<Int>(capacity: 5)
        var batch = [1, 2, 3]
        q.push(moving: &batch)
        batch = [4, 5, 6, 7]
        XCTAssertEqual(q.push(moving: &batch), 2)
        XCTAssertFalse(q.push(8).accepted)
        XCTAssertEqual(q.dropped.value, 3)
        XCTAssertEqual(taken(q), [1, 2, 3, 4, 5])
        batch = Array(10..<20)
        XCTAssertEqual(q.push(moving: &batch), 5, "an empty queue takes a capacity's worth")
        XCTAssertEqual(taken(q), Array(10..<15))
    }

    /// `takeAll` (the query log's and dnstap's reader) gets the batches too, flattened in order.
    func testTakeAllFlattensBatches() {
        let q = BoundedBatch<Int>(capacity: 100)
        q.push(1)
        var batch = [2, 3]
        q.push(moving: &batch)
        q.push(4)
        XCTAssertEqual(q.takeAll(), [1, 2, 3, 4])
        XCTAssertEqual(q.takeAll(), [])
        q.push(5)
        XCTAssertEqual(q.takeAll(), [5], "the emptied chunks held nothing back")
    }

    /// Chunk storage goes round: what the reader recycles, a producer gets back to fill, so a
    /// steady flow of batches allocates nothing.
    func testRecycledChunksComeBackToProducersEmpty() {
        let q = BoundedBatch<Int>(capacity: 1_000)
        q.push(0)
        var batch = Array(1...64)
        q.push(moving: &batch)
        XCTAssertTrue(batch.isEmpty)
        XCTAssertEqual(batch.capacity, 0, "no spare yet")
        XCTAssertEqual(taken(q), Array(0...64))     // recycles the chunk
        q.push(0)
        batch = Array(1...3)
        q.push(moving: &batch)
        XCTAssertTrue(batch.isEmpty)
        XCTAssertGreaterThanOrEqual(batch.capacity, 64, "the recycled chunk's storage")
        XCTAssertEqual(taken(q), [0, 1, 2, 3])
    }
}
