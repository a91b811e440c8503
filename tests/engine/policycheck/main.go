// policycheck: evaluate a containers policy.json for one image in a registry, with
// upstream containers/image (the library podman and skopeo use). Debian's podman 4.3.1
// and skopeo 1.9.3 are built with sigstore disabled ("Debian-local change: sigstore
// disabled"), so the tests build this to check nbpipe's signatures the way a stock
// podman/CRI-O node would.
//
// Usage: policycheck POLICY.json REGISTRIES.d docker://REF
// Exit 0 and "allowed" when the policy admits the image; exit 1 and the reason otherwise.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containers/image/v5/image"
	"github.com/containers/image/v5/signature"
	"github.com/containers/image/v5/transports/alltransports"
	"github.com/containers/image/v5/types"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: policycheck POLICY.json REGISTRIES.d docker://REF")
		os.Exit(2)
	}
	ctx := context.Background()
	policy, err := signature.NewPolicyFromFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		fail(err)
	}
	ref, err := alltransports.ParseImageName(os.Args[3])
	if err != nil {
		fail(err)
	}
	sys := &types.SystemContext{RegistriesDirPath: os.Args[2],
		DockerInsecureSkipTLSVerify: types.OptionalBoolTrue}
	src, err := ref.NewImageSource(ctx, sys)
	if err != nil {
		fail(err)
	}
	defer src.Close()
	if _, err := pc.IsRunningImageAllowed(ctx, image.UnparsedInstance(src, nil)); err != nil {
		fail(err)
	}
	fmt.Println("allowed")
}

func fail(err error) {
	fmt.Println(err)
	os.Exit(1)
}
