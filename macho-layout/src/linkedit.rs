//! LINKEDIT contents: rebase and bind opcodes, the export trie, the symbol and string tables.
