// Package controllers holds kvop's reconcilers.
package controllers
