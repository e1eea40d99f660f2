// Package pb is the generated code of the plugin protocol (../proto/plugin.proto).
// Regenerate it after changing the .proto, with Debian's protobuf-compiler and the Go
// generators (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
// google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2):
//
//	go generate ./plugins/pb
package pb

//go:generate protoc -I ../proto --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto
