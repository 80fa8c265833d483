// Package textindex turns a file's bytes into text chunks and searches them,
// for OpenAI-compatible vector stores.
//
// The steps, in the order a file goes through them:
//
//   - Extract decodes the bytes as text (plain text, Markdown, JSON, CSV and
//     other text types), or says why it cannot.
//   - Split cuts the text into overlapping windows of tokens (Strategy),
//     counted with a real BPE tokenizer (CountTokens) that is compiled into
//     the binary: nothing is downloaded at run time.
//   - NewIndex builds an immutable keyword (and optional vector) index over one
//     file's chunks; Search ranks chunks across many such indexes with
//     collection-wide statistics, so scores do not depend on how chunks are
//     spread over files.
//   - ValidateAttributes and ParseFilter implement the attribute rules and the
//     comparison and compound filters of the vector store search API.
//
// Everything here is a pure function of its arguments and safe for concurrent
// use.
package textindex
