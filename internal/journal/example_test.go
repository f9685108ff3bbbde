package journal

import "time"

// exampleEntry is the worked example of docs/JOURNAL.md §5.
func exampleEntry() Entry {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return Entry{
		Seq: 1, Time: ts, First: ts, Count: 1,
		ConfigBefore: 3, ConfigAfter: 4,
		Type:   TypeConfig,
		Detail: map[string]string{"session": "00112233445566778899aabbccddeeff", "outcome": "confirmed"},
		Prev:   Genesis,
	}
}
