//! Resource tracking, leak detection with the acquiring source line, managed close and batches with rollback.
