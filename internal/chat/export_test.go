package chat

// FlushReceipts sends the receipts waiting in conversation id now, as
// their timer (Config.ReceiptDelay, Config.ReceiptEvery) would: a test
// that sets those long decides when they go out.
func (s *Service) FlushReceipts(id int64) { s.flushReceipts(id) }
