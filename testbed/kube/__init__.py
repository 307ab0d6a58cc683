"""A k3s-shaped Kubernetes cluster on loopback for the tests and the drill: real etcd, kube-apiserver and
kube-controller-manager (built from tests/peers/kube), fake kubelets and a binder of our own."""
