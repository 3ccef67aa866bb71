// Package migrations embeds every service's SQL migrations, one folder per service and, inside
// it, one folder per dialect (postgres, sqlite), in goose's SQL format. Each service has its
// own file here (patient.go, ...) holding its embed and accessor.
package migrations
