// Package forward runs port forwards that survive pod churn: a local listener bound once,
// pods chosen and re-chosen from a watch, many local connections over one upgraded
// connection per pod, and a status that tells the truth.
package forward
