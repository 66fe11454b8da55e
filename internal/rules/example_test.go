package rules_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/flowd/flowd/internal/rules"
)

func Example() {
	env, err := rules.NewEnv() // once; safe for concurrent use
	if err != nil {
		panic(err)
	}
	var body any
	payload := `{"status":"firing","alerts":[{"labels":{"service":"api","severity":"page"}}]}`
	if err := json.Unmarshal([]byte(payload), &body); err != nil {
		panic(err)
	}
	in := rules.Input{Body: body, Headers: map[string]string{"content-type": "application/json"}}

	filter, err := env.Compile(`body.status == "firing"`)
	if err != nil {
		panic(err)
	}
	ok, err := filter.Filter(context.Background(), in)
	fmt.Println(ok, err)

	service, err := env.Compile(`body.alerts[0].labels.service`)
	if err != nil {
		panic(err)
	}
	fmt.Println(service.Named("SERVICE").Value(context.Background(), in))

	list, err := env.Compile(`body.alerts`)
	if err != nil {
		panic(err)
	}
	_, err = list.Named("ALERTS").Value(context.Background(), in)
	fmt.Println(err)

	fmt.Println(env.Check(`bodyy.status == "firing"`))
	// Output:
	// true <nil>
	// api <nil>
	// webhook.variables.ALERTS must give a string, number or bool, got list
	// 1:1: undeclared reference to 'bodyy'
}
